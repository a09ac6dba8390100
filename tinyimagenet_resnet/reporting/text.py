"""Section titles and fixed phrases of the course report, by language (the course's question ids)."""

from .text_en import EN
from .text_fr import FR

TEXT = {"en": EN, "fr": FR}
