#!/usr/bin/python3
"""embed.py OUT.c IN.lua... -- each IN.lua as `const char <stem>_lua[]`."""
import os
import sys

out = sys.argv[1]
with open(out, 'w') as f:
    f.write('/* Generated from the bridge scripts (.lua) by embed.py: do not edit. */\n')
    for path in sys.argv[2:]:
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(path, 'rb') as src:
            data = src.read()
        f.write('const char %s_lua[] = {\n' % stem)
        for i in range(0, len(data), 12):
            f.write('  ' + ', '.join('0x%02x' % b for b in data[i:i + 12]) + ',\n')
        f.write('  0x00\n};\n')
