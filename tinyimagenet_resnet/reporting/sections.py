"""The sections of the course report, in order: one function each, from the module of its part of the course.

Every sentence comes from the language's text table (reporting/text.py); numbers come from the run directories,
floats in tables with 3 significant figures."""

from __future__ import annotations

from .section_data import data
from .section_model import lr_finder, model, overfit
from .section_project import general, limits, reproducibility
from .section_results import extra, full_training, test_evaluation
from .section_sweeps import comparisons, grids

# (heading key, function): the report, in order
SECTIONS = (
    ("s0", general),
    ("s1", data),
    ("s2", model),
    ("s3", overfit),
    ("s4", lr_finder),
    ("s5", grids),
    ("s6", full_training),
    ("s7", comparisons),
    ("s8", extra),
    ("s9", test_evaluation),
    ("s10", limits),
    ("s11", reproducibility),
)
