"""The plug-in's windows under Xvfb: the dialog captured to a PNG (no pixel
assertion), the progress window's Stop button leaving the image as it
was while Repeat Last (the same window, without the dialog) adds a layer,
and what the dialog says and does as an artist types, clicks and picks
($GFCG_TEST_DIALOG's script, gfcg-dialog.c: each `print` step writes a
DIALOG line of the dialog's state)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from plugin_helpers import BUILD, ROOT, Gimp

pytestmark = pytest.mark.skipif(shutil.which('xvfb-run') is None, reason='needs xvfb-run')


def forget_last_values(gimp):
    """GIMP 3 opens an interactive call with the last values it saved in the
    profile, over the arguments the script gives: the dialog tests start
    from none, whatever ran before them in the session's profile."""
    shutil.rmtree(gimp.profile / 'plug-in-settings', ignore_errors=True)


def test_capture_dialog(tmp_path):
    out = tmp_path / 'dialog.png'
    p = subprocess.run([str(ROOT / 'tools' / 'capture-dialog'), str(out)],
                       env={**os.environ, 'GFCG_BUILD_DIR': str(BUILD)},
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout
    from PIL import Image
    im = Image.open(out)
    assert im.width > 400 and im.height > 300


def test_dialog_repeat_last_and_stop(gimp, tiny_packs):
    """The dialog (seed 4 typed, which turns Randomize off, and Draw pressed
    for us), then Filters > Repeat Last with the values it saved: both go
    through the progress window, with seed 4.  Then Repeat Last again,
    stopped after 3 evaluations: nothing is added."""
    pack = tiny_packs / 'tiny-pixel'
    forget_last_values(gimp)
    layers = '(car (gimp-image-get-layers img))'
    report = (f'(display (string-append "AFTER " (number->string (vector-length {layers})) " "'
              ' (if (= (car (gimp-image-is-dirty img)) 0) "clean" "dirty") " "'
              f' (car (gimp-item-get-name (vector-ref {layers} 0))) "\\n"))')
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB))))
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE #:image img #:pack "{pack}"
                             #:class-index 482 #:steps 6 #:seed 4 #:mode "gfcg")
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        {report})''', env={'GFCG_TEST_DIALOG': 'seed:4;ok', 'GFCG_DEBUG_REUSE': '1',
                            'GFCG_TEST_PROGRESS': '1'},
                      wrap=('xvfb-run', '-a'))
    assert re.findall(r'^AFTER (.*)$', log, re.M) == [
        '2 dirty cassette player (gfcg, seed 4) #1']  # GIMP numbers a repeated name
    # Draw took the pack the dialog had loaded for its estimate; Repeat Last
    # (no dialog) loaded its own.
    assert log.count('drawing with the pack the dialog loaded') == 1, log
    # The progress window says the step in words; sigma and s are its tooltip.
    progress = re.findall(r'^PROGRESS (.*) \| (.*)$', log, re.M)
    assert len(progress) == 2 * 11, progress  # 2 x steps - 1 evaluations, twice
    assert progress[0][0].startswith('Step 1 of 6/steering away from '), progress[0]
    assert progress[0][1].startswith('Noise level sigma = 80; GFCG strength s = ')
    assert progress[-1][0].startswith('Step 6 of 6')
    assert not any('sigma' in text for text, _ in progress)

    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB)))
             (bg (car (gimp-layer-new img "bg" 16 16 RGB-IMAGE 100 LAYER-MODE-NORMAL))))
        (gimp-image-insert-layer img bg 0 0)
        (gimp-image-clean-all img)
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        {report})''', env={'GFCG_TEST_STOP_AT': '3'}, wrap=('xvfb-run', '-a'))
    assert re.findall(r'^AFTER (.*)$', log, re.M) == ['1 clean bg']


def dialog_states(log):
    """The DIALOG lines of the script's print steps, as dicts."""
    return [dict(kv.split('=', 1) for kv in line.split('\t'))
            for line in re.findall(r'^DIALOG (.*)$', log, re.M)]


def run_dialog(gimp, script, pack, more='', env=None, **args):
    """One interactive call on a new image with the dialog driven by script;
    returns (the DIALOG states, the layer names after it and more)."""
    forget_last_values(gimp)
    kw = ' '.join(f'#:{k.replace("_", "-")} {v}' for k, v in args.items())
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB))))
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE #:image img #:pack "{pack}" {kw})
        {more}
        (for-each (lambda (l) (display (string-append "LAYER " (car (gimp-item-get-name l)) "\\n")))
                  (vector->list (car (gimp-image-get-layers img)))))''',
                      env={**(env or {}), 'GFCG_TEST_DIALOG': script}, wrap=('xvfb-run', '-a'))
    return dialog_states(log), re.findall(r'^LAYER (.*)$', log, re.M)


def test_class_picker(gimp, tiny_packs, tmp_path):
    """The class picker of a 4-class pack: only its classes listed, a line
    saying what Draw will draw, "Did you mean" for a typo, typing picks the
    first class the pack draws (so Draw draws it), a click on a greyed
    class says why it cannot be picked.  (No catalog packs and none
    installed: other packs offered for a class are test_plugin_models.py's.)"""
    pack = tiny_packs / 'tiny-pixel'
    empty = tmp_path / 'catalog.json'
    empty.write_text(json.dumps({'format': 'gfcg-catalog', 'format_version': 1,
                                 'files': {}, 'packs': {}}))
    states, layers = run_dialog(
        gimp, 'print;type:golden retreiver;print;type:chainsaw;print;type:;only:0;click:1;print;'
        'type:gold;print;type:spring;print;ok', pack, class_index=482, steps=2, mode='"gfcg"',
        env={'GFCG_CATALOG': str(empty), 'XDG_DATA_HOME': str(tmp_path / 'data')})
    start, typo, chainsaw, click, gold, spring = states
    assert start['will-draw'] == 'Will draw: cassette player'
    assert start['count'] == '4 of 1000 classes can be drawn with this pack'
    assert start['only'] == '1'  # a pack of under 100 classes: only those listed
    assert start['hint'] == ''
    assert typo['hint'] == "No class 'golden retreiver'. Did you mean: golden retriever?"
    assert typo['class'] == '482'
    assert (chainsaw['class'], chainsaw['will-draw'], chainsaw['hint']) == (
        '491', 'Will draw: chain saw', '')
    draws = 'It draws: tench, English springer, cassette player, chain saw.'
    assert click['only'] == '0'
    assert click['hint'] == f"'goldfish' is not in this pack. {draws}"
    assert click['class'] == '491' and click['draw'] == '1'
    assert gold['hint'] == f"No class matching 'gold' is in this pack. {draws}"
    assert (spring['class'], spring['will-draw']) == ('217', 'Will draw: English springer')
    assert len(layers) == 1 and layers[0].startswith('English springer (gfcg, seed ')


def test_weight_follows_mode(gimp, tiny_packs, tmp_path):
    """Choosing a guidance mode sets the pack's weight for it (CFG and ATG
    weights differ), the labels say what turns each push off, and a weight
    the mode does not use is greyed."""
    pack = tmp_path / 'weights'
    shutil.copytree(tiny_packs / 'tiny-pixel', pack)
    meta = json.loads((pack / 'pack.json').read_text())
    meta['defaults'].update(guidance=1.2, guidance_cfg=1.7, guidance_atg=2.3)
    (pack / 'pack.json').write_text(json.dumps(meta))
    states, _ = run_dialog(gimp, 'print;mode:cfg;print;mode:atg;print;mode:gfcg+cfg;print;'
                           'mode:none;print;cancel', pack, steps=2, mode='"gfcg"')
    assert [(s['mode'], s['guidance']) for s in states] == [
        ('gfcg', '1.2'), ('cfg', '1.7'), ('atg', '2.3'), ('gfcg+cfg', '1.7'), ('none', '1.2')]
    weight, strength = 'CFG/ATG _weight (1 = off)', 'GFCG s_trength (0 = off)'  # mnemonics
    assert [(s['weight'], s['strength']) for s in states] == [
        (f'{weight} (greyed)', strength), (weight, f'{strength} (greyed)'),
        (weight, f'{strength} (greyed)'), (weight, strength),
        (f'{weight} (greyed)', f'{strength} (greyed)')]


def test_repeat_last_new_seed(tiny_packs, tmp_path):
    """Randomize is on by default (a fresh GIMP profile): the dialog shows a
    new seed and draws with it, Repeat Last and the dialog opened again draw
    with new ones; a seed typed in the dialog turns Randomize off and stays,
    on Repeat Last too; a script's seed is always kept."""
    gimp = Gimp(tmp_path / 'profile', tmp_path)
    pack = tiny_packs / 'tiny-pixel'
    call = f'#:image img #:pack "{pack}" #:class-index 0 #:steps 2 #:seed 4 #:mode "gfcg"'
    layers = '(car (gimp-image-get-layers img))'
    names = (f'(for-each (lambda (l) (display (string-append "LAYER " (car (gimp-item-get-name l))'
             f' "\\n"))) (reverse (vector->list {layers})))')
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB))))
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE {call})
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE {call})
        {names})''', env={'GFCG_TEST_DIALOG': 'print;ok'}, wrap=('xvfb-run', '-a'))
    first, again = dialog_states(log)
    assert first['random'] == '1' and again['random'] == '1', log
    seeds = [int(m) for m in re.findall(r'^LAYER tench \(gfcg, seed (\d+)\)', log, re.M)]
    assert len(seeds) == 4, log
    assert seeds[0] == int(first['seed']) and seeds[3] == int(again['seed'])
    assert len(set(seeds)) == 4, seeds

    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB))))
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE {call})
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        (plug-in-gfcg-render #:run-mode RUN-NONINTERACTIVE {call})
        {names})''', env={'GFCG_TEST_DIALOG': 'seed:77;print;ok'}, wrap=('xvfb-run', '-a'))
    assert dialog_states(log)[0]['random'] == '0'
    assert re.findall(r'^LAYER (.*)$', log, re.M) == [
        'tench (gfcg, seed 77)', 'tench (gfcg, seed 77) #1', 'tench (gfcg, seed 4)']


def test_bad_pack_path(gimp, tiny_packs, tmp_path):
    """A pack that does not load: the dialog says that no class can be drawn
    (not "1000 of 1000 classes"), and Draw is greyed; a good pack typed
    next brings its classes, a bad one again takes them away."""
    good = tiny_packs / 'tiny-pixel'
    states, layers = run_dialog(gimp, f'print;pack:{good};print;pack:{tmp_path}/nowhere;print;'
                                'cancel', '/no/such/pack', class_index=0)
    bad, loaded, again = states
    for s in (bad, again):
        assert s['count'] == 'No class can be drawn: the pack could not be loaded', s
        assert s['will-draw'] == 'Will draw nothing: the pack could not be loaded'
        assert s['draw'] == '0'
        assert 'no such model pack' in s['pack']
    assert bad['estimate'] == 'No estimate: the pack could not be loaded.'
    assert loaded['count'] == '4 of 1000 classes can be drawn with this pack'
    assert (loaded['will-draw'], loaded['draw']) == ('Will draw: tench', '1')
    # The pack's short name and title; its folder and licence in the tooltip
    # (a licence paragraph made the line a wall of text).
    meta = json.loads((good / 'pack.json').read_text())
    assert loaded['pack'] == f"{meta['name']}: {meta['title']} (16x16 px, 4 classes)"
    assert loaded['pack-tip'] == f"Folder: {good} Licence: {meta['licence']}"
    assert bad['pack-tip'] == ''
    assert layers == []


def test_estimate_range(gimp, tiny_packs):
    """The estimate is a range measured after a warm-up (not timed here):
    well-formed, and twice the steps (31 evaluations for 15) about doubles
    it."""
    states, _ = run_dialog(gimp, 'steps:8;print;steps:16;print;cancel', tiny_packs / 'tiny-pixel',
                           class_index=0, mode='"gfcg"')
    (lo8, hi8), (lo16, hi16) = [(float(s['est-lo']), float(s['est-hi'])) for s in states]
    assert 0 < lo8 <= hi8 and 0 < lo16 <= hi16, states
    assert 1.8 < lo16 / lo8 < 2.3 and 1.8 < hi16 / hi8 < 2.3, states
    assert states[0]['estimate'].startswith('About '), states[0]


def test_help_page(gimp, tiny_packs):
    """Help opens the plug-in's own page, not GIMP's "user manual is
    missing": GIMP recorded the help domain the plug-in registers, and the
    dialog's help id maps (help/en/gimp-help.xml) to a page that exists and
    describes the dialog."""
    pack = tiny_packs / 'tiny-pixel'
    forget_last_values(gimp)
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB)))
             (l (car (gimp-layer-new img "bg" 16 16 RGB-IMAGE 100 LAYER-MODE-NORMAL))))
        (gimp-image-insert-layer img l 0 0)
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE #:image img #:pack "{pack}")
        (plug-in-gfcg-refine #:run-mode RUN-INTERACTIVE #:image img #:drawables (vector l)
                             #:pack "{pack}"))''',
                      env={'GFCG_TEST_DIALOG': 'help;cancel'}, wrap=('xvfb-run', '-a'))
    helps = dict(re.findall(r'^HELP (\S+) (.*)$', log, re.M))
    assert set(helps) == {'plug-in-gfcg-render', 'plug-in-gfcg-refine'}, log
    installed = gimp.profile / 'plug-ins' / 'gfcg-render' / 'help' / 'en' / 'index.html'
    assert helps['plug-in-gfcg-render'] == installed.as_uri()
    assert helps['plug-in-gfcg-refine'] == installed.as_uri() + '#start-from'
    page = installed.read_text()
    for words in ('Start from', 'Upscale', 'GFCG strength', 'CFG/ATG weight', 'id="start-from"'):
        assert words in page, words
    # GIMP keeps each plug-in's help domain in pluginrc: the Help button's
    # gimp-help call finds the pages there.
    rc = (gimp.profile / 'pluginrc').read_bytes().decode('utf-8', 'replace')
    assert re.search(r'\(help-def "org\.gfcg\.render"\s+"[^"]*gfcg-render/help"', rc), rc[:2000]
