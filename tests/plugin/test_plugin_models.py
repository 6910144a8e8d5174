"""The Get models window (ui/gfcg-models-window.c) in real GIMP 3 under
Xvfb, against a catalog served on 127.0.0.1 by tests/test_models.py's
server, with tiny-pixel's files as the pack.  The dialog's $GFCG_TEST_DIALOG
script opens the window and presses its buttons as a user would (a greyed
button does nothing); its m-print steps write MODELS lines of the window's
state and its print steps DIALOG lines (the pack picker's list).

What is asserted: the catalog's packs are listed with what they draw and
their size; a non-commercial licence must be ticked before Download does
anything; a download shows its progress, and Cancel mid-download leaves no
pack and no staging folder but keeps the partial file, which the next
Download resumes with a Range request (fewer bytes served); the installed
pack is then offered by the dialog's pack picker and verifies; Use picks
it; Remove uninstalls it.  XDG_DATA_HOME and XDG_CACHE_HOME are temporary
folders."""
import re
import shutil
import sys
import threading

import pytest

from plugin_helpers import ROOT, Gimp

sys.path.insert(0, str(ROOT / 'tests'))
from test_models import PACK, PACK_FILES, Env, Server, copy_pack, tiny_pack_bytes  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which('xvfb-run') is None, reason='needs xvfb-run')

NC = "CC-BY-NC-SA-4.0 (NVIDIA's EDM2 weights: non-commercial use only)"


@pytest.fixture
def server():
    srv = Server()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The bytes of tiny-pixel's files (ImageNet classes 0, 217, 482, 491)."""
    return tiny_pack_bytes(tmp_path_factory.mktemp('tinypack'),
                           'tiny-pixel for the Get models tests')


def write_catalog(env, tiny):
    """tiny (non-commercial, 4 classes at 16 px) and big (MIT, all of
    ImageNet at 64 px: listed, never fetched)."""
    files, packs = copy_pack(env, tiny)
    packs[PACK].update(licence=NC, resolution=16, classes=[0, 217, 482, 491])
    packs['big'] = dict(packs[PACK], title='Big test pack', licence='MIT', resolution=64,
                        classes='imagenet-1k')
    env.write_catalog(files, packs)


def states(log, kind):
    return [dict(kv.split('=', 1) for kv in line.split('\t'))
            for line in re.findall(rf'^{kind} (.*)$', log, re.M)]


def test_get_models_window(profile, tmp_path, server, tiny, tiny_packs):
    env = Env(tmp_path, server)
    write_catalog(env, tiny)
    main = tiny['main.safetensors']
    n = len(main) // 3
    server.stall['main.safetensors'] = n     # the first transfer hangs after n bytes
    script = ';'.join([
        # Classes tiny-pixel lacks: the packs that draw them offered.
        'type:', 'only:0', 'click:1', 'print', 'click:574', 'print',  # d0, d1
        'link:get:', 'm-print', 'm-close',                             # m0: big chosen
        'link:use:', 'print',                                         # d2: imagenette-64
        'models', 'm-print',                                          # 0
        f'm-select:{PACK}', 'm-download', 'm-print',                  # 1: not ticked
        'm-accept:1', 'm-print',                                      # 2
        'm-download', f'm-wait-bytes:main.safetensors:{n}', 'm-print',  # 3: downloading
        'm-cancel', 'm-wait', 'm-print', 'print',                     # 4: cancelled
        'm-download', 'm-wait', 'm-print', 'print',                   # 5: resumed, installed
        'm-verify', 'm-wait', 'm-print',                              # 6
        'm-use', 'print',
        'm-remove', 'm-wait', 'm-print', 'print',                     # 7: removed
        'm-select:big', 'm-print', 'm-close', 'cancel'])              # 8
    gimp = Gimp(profile, tmp_path)
    shutil.rmtree(profile / 'plug-in-settings', ignore_errors=True)
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB))))
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE #:image img
                             #:pack "{tiny_packs / 'tiny-pixel'}" #:class-index 217))''',
                      env={**env.env, 'GFCG_TEST_DIALOG': script}, wrap=('xvfb-run', '-a'))
    m = states(log, 'MODELS')
    d = states(log, 'DIALOG')
    assert len(m) == 10 and len(d) == 7, log
    # goldfish: only big (all of ImageNet) draws it; golf ball also the
    # installed default pack, which the link switches to.
    assert d[0]['hint'] == ("'goldfish' is not in this pack. It draws: tench, English "
                            "springer, cassette player, chain saw. Other packs draw it: "
                            "big (Get Models)."), d[0]
    assert d[1]['hint'].endswith(" Other packs draw it: imagenette-64 (installed), "
                                 "big (Get Models)."), d[1]
    assert m[0]['selected'] == 'big', m[0]
    assert d[2]['pack-setting'].endswith('/imagenette-64') and d[2]['class'] == '574', d[2]
    assert d[2]['draw'] == '1' and d[2]['will-draw'] == 'Will draw: golf ball', d[2]
    m, d = m[1:], d[3:]

    # The catalog listed, the first pack chosen with what it draws.
    assert m[0]['packs'] == f'{PACK}:Not installed,big:Not installed'
    assert m[0]['selected'] == PACK
    assert '4 classes (tench, English springer, cassette player, chain saw) at 16x16 px' \
        in m[0]['details']
    assert 'Time per picture: on auto: after install' in m[0]['details']
    # Its licence shown, Download greyed and doing nothing until it is ticked.
    assert NC in m[1]['licence'] and 'Non-commercial use only' in m[1]['licence']
    assert (m[1]['accept'], m[1]['download'], m[1]['busy']) == ('unticked', '0', '0')
    assert (m[2]['accept'], m[2]['download']) == ('ticked', '1')

    # Downloading: the bar says which file and how far.
    assert (m[3]['busy'], m[3]['cancel'], m[3]['download']) == ('1', '1', '0')
    assert m[3]['progress'].startswith('main.safetensors: '), m[3]
    total = sum(len(tiny[f]) for f in PACK_FILES)
    assert abs(float(m[3]['fraction']) - (len(tiny['pack.json']) + n) / total) < 0.011, m[3]

    # Cancelled: nothing installed, the partial file kept.
    assert m[4]['busy'] == '0' and m[4]['status'].startswith('Cancelled.'), m[4]
    assert m[4]['packs'].startswith(f'{PACK}:Partly downloaded ('), m[4]
    assert PACK not in d[0]['packs'].split(',')

    # Downloaded again: resumed, installed, offered by the pack picker.
    assert m[5]['status'].startswith(f'{PACK} is installed'), m[5]
    assert m[5]['packs'].startswith(f'{PACK}:Installed,'), m[5]
    assert (m[5]['verify'], m[5]['remove'], m[5]['use'], m[5]['download']) == ('1', '1', '1', '0')
    assert PACK in d[1]['packs'].split(',')
    reqs = server.requests_for('main.safetensors')
    assert [r['range'] for r in reqs] == [None, f'bytes={n}-']
    assert reqs[0]['sent'] == n and reqs[1]['status'] == 206 and reqs[1]['sent'] == len(main) - n
    assert len(server.requests_for('pack.json')) == 1   # kept whole in the download cache
    first = sum(r['sent'] for r in server.log[:2])
    second = sum(r['sent'] for r in server.log[2:])
    assert second < total and first + second == total, server.log

    assert m[6]['status'].startswith(f'{PACK}: ok: loads; {len(PACK_FILES)} files match'), m[6]
    # Use: the dialog loads the installed pack (its title is the served one's).
    assert d[2]['pack-setting'] == PACK, d[2]
    assert d[2]['pack'].startswith('tiny-pixel: tiny-pixel for the Get models tests'), d[2]

    # Removed.
    assert m[7]['status'] == f'{PACK} was removed.', m[7]
    # (its downloads stay in the cache, as after `gfcg models remove`)
    assert m[7]['packs'].startswith(f'{PACK}:Downloaded, not installed,'), m[7]
    assert PACK not in d[3]['packs'].split(',')
    env.assert_nothing_installed()

    # A pack under a permissive licence needs no tick.
    assert (m[8]['selected'], m[8]['accept'], m[8]['download']) == ('big', 'none', '1')
    assert 'all 1000 ImageNet classes at 64x64 px' in m[8]['details']
