#!/bin/bash
# usage: cpudelta.sh cmd... : prints user/system/idle seconds of the whole machine while cmd ran
read -r _ u1 n1 s1 i1 w1 q1 sq1 _ < /proc/stat
"$@"
read -r _ u2 n2 s2 i2 w2 q2 sq2 _ < /proc/stat
hz=$(getconf CLK_TCK)
echo "machine cpu: user $(( (u2+n2-u1-n1)/hz )) s, sys $(( (s2+q2+sq2-s1-q1-sq1)/hz )) s, idle $(( (i2+w2-i1-w1)/hz )) s"
