"""The scripting examples of README.md and docs/plugin.md run as written.

Every fenced block right after a `<!-- run: script-fu -->` or `<!-- run:
python-fu -->` line is taken out of the page and run unchanged in a real,
headless GIMP 3 (tools/gimp-batch: gimp-console-3.0 with the batch
interpreter of its kind, the plug-in built from this tree, the default pack).
Each must succeed and add a layer (the blocks print the image's layers:
Script-Fu the layer ids, Python-Fu their names, which name the class asked
for), and the run must not print what headless runs used to: the "stray
image" warning of an image the script left behind.  (Until 2026-12 the
positional Script-Fu example failed with "unbound variable: img" and the
Python-Fu one with "name 'image' is not defined": they were fragments.)
"""
import ast
import re

import pytest

from plugin_helpers import ROOT

DOCS = [ROOT / 'README.md', ROOT / 'docs' / 'plugin.md']
BLOCK = re.compile(r'^<!-- run: (script-fu|python-fu) -->\n```\w*\n(.*?)\n```$', re.S | re.M)
# What a clean headless run must not print.
NOISE = ['a stray image seems to have been left around']


def snippets():
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            line = text.count('\n', 0, m.start()) + 2
            found.append(pytest.param(m[1], m[2], id=f'{doc.name}:{line}'))
    return found


def test_pages_have_runnable_snippets():
    kinds = [p.values[0] for p in snippets()]
    assert kinds.count('script-fu') >= 2 and kinds.count('python-fu') >= 2, kinds


@pytest.mark.parametrize('kind,code', snippets())
def test_snippet_runs_as_written(gimp, kind, code):
    _, log = gimp.run(code, python=kind == 'python-fu')
    if kind == 'script-fu':
        # (display (gimp-image-get-layers img)) prints "(#(ID ...))": one more
        # layer than the script inserted itself.
        shown = re.findall(r'\(#\(([0-9 ]*)\)\)', log)
        assert shown, log
        own = code.count('(gimp-image-insert-layer ')
        assert len(shown[-1].split()) >= own + 1, log
    else:
        shown = re.findall(r'^layers: (\[.*\])$', log, re.M)
        assert shown, log
        names = ast.literal_eval(shown[-1])
        count = int((re.findall(r"'count', (\d+)", code) or ['1'])[0])
        wanted = re.findall(r"'class-name', '([^']+)'", code)[0]
        assert len(names) == count and all(wanted in n for n in names), (names, log)
    for line in NOISE:
        assert line not in log, log
