#!/usr/bin/env python3
"""Writes data/imagenet-classes.tsv, the 1000 ImageNet-1k classes the GIMP plug-in
offers, from two permissively licensed sources (see data/README.md):

  - torchvision's ImageNet category names (BSD-3-Clause, Debian's python3-torchvision,
    torchvision/models/_meta.py): one unique English name per class;
  - ../shared/models/mobilenet-v2-coral/imagenet_labels.txt (Apache-2.0): the
    comma-separated WordNet synonyms, 'background' first, then the classes in order;
  - the wnids of the classes that the project's packs name (data/models/*/pack.json).

Usage: tools/make-imagenet-classes.py TORCHVISION_META_PY LABELS_TXT [OUT.tsv]
(apt-get download python3-torchvision && dpkg-deb -x python3-torchvision_*.deb tv
gives tv/usr/lib/python3/dist-packages/torchvision/models/_meta.py).
"""
import ast
import glob
import json
import re
import sys


def main():
    meta, labels = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else 'data/imagenet-classes.tsv'
    src = open(meta, encoding='utf-8').read()
    names = ast.literal_eval(re.search(r'_IMAGENET_CATEGORIES = (\[.*?\])', src, re.S).group(1))
    lines = [l.rstrip('\n') for l in open(labels, encoding='utf-8')]
    assert lines[0] == 'background' and len(lines) == 1001 and len(names) == 1000
    assert len(set(names)) == 1000
    wnids = {}
    for p in glob.glob('data/models/*/pack.json'):
        for c in json.load(open(p, encoding='utf-8'))['classes']:
            if c.get('wnid'):
                wnids[c['imagenet']] = c['wnid']
    with open(out, 'w', encoding='utf-8') as f:
        f.write('# index\twnid\tname\tsynonyms (comma-separated); see data/README.md\n')
        for i, name in enumerate(names):
            syn = [s.strip() for s in lines[i + 1].split(',')]
            syn = [s for s in syn if s and s.lower() != name.lower()]
            assert '\t' not in name and not any('\t' in s for s in syn)
            f.write(f'{i}\t{wnids.get(i, "")}\t{name}\t{", ".join(syn)}\n')


if __name__ == '__main__':
    main()
