"""The translations: every message of the sources is translated, none fuzzy,
and the catalogs compile with format checks."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / 'po'
LANGS = PO.joinpath('LINGUAS').read_text().split()


def msgids(path):
    out = subprocess.run(['msgcat', '--no-wrap', '--sort-output', str(path)],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return set(re.findall(r'^msgid "(.+)"$', out, re.M))


@pytest.fixture(scope='module')
def source_msgids(tmp_path_factory):
    pot = tmp_path_factory.mktemp('pot') / 'fresh.pot'
    files = [l for l in PO.joinpath('POTFILES').read_text().split() if l]
    subprocess.run(['xgettext', '--from-code=UTF-8', '--keyword=_', '--keyword=N_',
                    '--keyword=C_:1c,2', '--keyword=g_dngettext:2,3', '-o', str(pot), *files],
                   cwd=ROOT, check=True)
    return msgids(pot)


def test_at_least_two_languages():
    assert {'de', 'fr'} <= set(LANGS)


@pytest.mark.parametrize('lang', LANGS)
def test_complete(lang, source_msgids):
    po = PO / f'{lang}.po'
    stats = subprocess.run(['msgfmt', '-c', '--statistics', '-o', '/dev/null', str(po)],
                           stderr=subprocess.PIPE, text=True, check=True).stderr
    assert 'untranslated' not in stats and 'fuzzy' not in stats, stats
    missing = source_msgids - msgids(po)
    assert not missing, f'{lang}.po lacks {sorted(missing)}'
