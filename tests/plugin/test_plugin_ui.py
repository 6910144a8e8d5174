"""The plug-in's windows under Xvfb: the dialog captured to a PNG (no pixel
assertion), and the progress window's Stop button leaving the image as it
was while Repeat Last (the same window, without the dialog) adds a layer."""
import os
import re
import shutil
import subprocess

import pytest

from plugin_helpers import BUILD, ROOT

pytestmark = pytest.mark.skipif(shutil.which('xvfb-run') is None, reason='needs xvfb-run')


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
    """The dialog (Draw pressed for us), then Filters > Repeat Last with the
    values it saved: both go through the progress window.  Then Repeat Last
    again, stopped after 3 evaluations: nothing is added."""
    pack = tiny_packs / 'tiny-pixel'
    layers = '(car (gimp-image-get-layers img))'
    report = (f'(display (string-append "AFTER " (number->string (vector-length {layers})) " "'
              ' (if (= (car (gimp-image-is-dirty img)) 0) "clean" "dirty") " "'
              f' (car (gimp-item-get-name (vector-ref {layers} 0))) "\\n"))')
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB))))
        (plug-in-gfcg-render #:run-mode RUN-INTERACTIVE #:image img #:pack "{pack}"
                             #:class-index 482 #:steps 6 #:seed 4 #:mode "gfcg")
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        {report})''', env={'GFCG_TEST_DIALOG': 'ok', 'GFCG_DEBUG_REUSE': '1'},
                      wrap=('xvfb-run', '-a'))
    assert re.findall(r'^AFTER (.*)$', log, re.M) == [
        '2 dirty cassette player (gfcg, seed 4) #1']  # GIMP numbers a repeated name
    # Draw took the pack the dialog had loaded for its estimate; Repeat Last
    # (no dialog) loaded its own.
    assert log.count('drawing with the pack the dialog loaded') == 1, log

    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 16 16 RGB)))
             (bg (car (gimp-layer-new img "bg" 16 16 RGB-IMAGE 100 LAYER-MODE-NORMAL))))
        (gimp-image-insert-layer img bg 0 0)
        (gimp-image-clean-all img)
        (plug-in-gfcg-render #:run-mode RUN-WITH-LAST-VALS #:image img)
        {report})''', env={'GFCG_TEST_STOP_AT': '3'}, wrap=('xvfb-run', '-a'))
    assert re.findall(r'^AFTER (.*)$', log, re.M) == ['1 clean bg']
