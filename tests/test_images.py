"""Images the engine reads (`gfcg classify`; init images and masks later) are
bounded: a picture of more than GFCG_MAX_IMAGE_PIXELS (4096x4096) is refused
from its header, and a lying ancillary chunk cannot make libpng allocate
gigabytes.  Each case must fail fast, with a clear message, in little memory.

Runs against $GFCG_BIN; `make check` runs it again in the ASan build.
"""
import os
import resource
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

GFCG = os.environ.get('GFCG_BIN') or shutil.which('gfcg')
SIG = b'\x89PNG\r\n\x1a\n'
# Peak RSS allowed to the child reading a hostile file.  The tiny pack and
# the engine need well under 100 MB; before the fixes these files took 7 GB
# (16384x16384) and 2 GB (lying tEXt on libpng 1.6.39).  ASan's shadow memory
# counts too, hence the margin.
RSS_LIMIT_MB = 400


def chunk(kind, data, length=None):
    return (struct.pack('>I', len(data) if length is None else length) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data)))


def png(width, height, depth=8, colour=2, rows=None, extra=b''):
    """A PNG whose IDAT holds `rows` (default: all-zero rows, filter 0)."""
    if rows is None:
        row = b'\x00' * (1 + (width * depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] + 7) // 8)
        z = zlib.compressobj(9)
        idat = b''.join(z.compress(row) for _ in range(height)) + z.flush()
    else:
        idat = zlib.compress(rows)
    return (SIG + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, depth, colour, 0, 0, 0)) +
            extra + chunk(b'IDAT', idat) + chunk(b'IEND', b''))


def lying_chunk_png(kind):
    """49 bytes: a 1x1 header, then `kind` claiming 2^31 - 16 bytes."""
    body = {b'tEXt': b'key\x00text', b'zTXt': b'k\x00\x00x\x9c\x03\x00\x00',
            b'iTXt': b'k\x00\x00\x00\x00\x00\x00\x00', b'sPLT': b'p\x00\x08\xff\xff\xff\xff\xff'}[kind]
    data = SIG + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0)) + \
        struct.pack('>I', 0x7ffffff0) + kind + body
    assert len(data) == 49
    return data


def _is_asan(path):
    with open(path, 'rb') as f:
        return b'__asan_init' in f.read()


def classify(pack, image, timeout=60):
    """Runs `gfcg classify`; returns (process, seconds, peak RSS of the child in MB).

    Outside ASan the child also gets a 4 GB address-space limit, so that an
    engine without the cap fails (aborts) instead of taking the machine's memory."""
    if not GFCG:
        pytest.fail('engine binary not found: set GFCG_BIN', pytrace=False)
    limit = None if _is_asan(GFCG) else (
        lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.monotonic()
        child = subprocess.Popen([GFCG, 'classify', '--pack', str(pack), '--device', 'cpu',
                                  str(image)], stdout=out, stderr=err, preexec_fn=limit)
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        _, status, usage = os.wait4(child.pid, 0)
        killer.cancel()
        seconds = time.monotonic() - t
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        p = subprocess.CompletedProcess(child.args, child.returncode,
                                        out.read().decode(errors='replace'),
                                        err.read().decode(errors='replace'))
    return p, seconds, usage.ru_maxrss / 1024


@pytest.fixture(scope='module')
def pack(packs):
    return packs / 'tiny-pixel'


def test_small_png_is_read(pack, tmp_path):
    f = tmp_path / 'ok.png'
    # 16x16 RGB, grey, palette and RGBA, 8 and 16 bits: all read as RGB.
    for i, (depth, colour) in enumerate([(8, 2), (16, 2), (1, 0), (8, 4), (8, 6), (16, 6)]):
        f.write_bytes(png(16, 16, depth, colour))
        p, _, _ = classify(pack, f)
        assert p.returncode == 0, f'{depth}-bit type {colour}: {p.stderr}'
        assert str(f) in p.stdout


def test_huge_png_refused_from_header(pack, tmp_path):
    """16384x16384 one-bit grey: 32 KB on disk, 7.1 GB and 100 s before the cap."""
    f = tmp_path / 'huge.png'
    f.write_bytes(png(16384, 16384, depth=1, colour=0))
    assert f.stat().st_size < 64 * 1024
    p, seconds, rss = classify(pack, f)
    assert p.returncode == 1, p.stderr
    assert f'{f}: 16384x16384 pixels is too large (at most 16777216 pixels' in p.stderr
    assert seconds < 20, seconds
    assert rss < RSS_LIMIT_MB, f'{rss:.0f} MB'


def test_png_just_over_the_cap(pack, tmp_path):
    f = tmp_path / 'wide.png'
    f.write_bytes(png(4097, 4096, depth=1, colour=0))
    p, _, rss = classify(pack, f)
    assert p.returncode == 1 and '4097x4096 pixels is too large' in p.stderr, p.stderr
    assert rss < RSS_LIMIT_MB


@pytest.mark.parametrize('kind', [b'tEXt', b'zTXt', b'iTXt', b'sPLT'])
def test_lying_ancillary_chunk(pack, tmp_path, kind):
    """A chunk claiming ~2^31 bytes in a 49-byte file: libpng 1.6.39 allocated
    2 GB and spent 8-21 s on these before the limits."""
    f = tmp_path / f'{kind.decode()}.png'
    f.write_bytes(lying_chunk_png(kind))
    p, seconds, rss = classify(pack, f)
    assert p.returncode == 1, p.stderr
    assert f'{f}: ' in p.stderr
    assert seconds < 10, seconds
    assert rss < RSS_LIMIT_MB, f'{rss:.0f} MB'


def test_large_valid_text_chunk_is_skipped(pack, tmp_path):
    """Ancillary chunks within the limit are skipped, not refused."""
    f = tmp_path / 'text.png'
    f.write_bytes(png(16, 16, extra=chunk(b'tEXt', b'gfcg\x00' + b'x' * 300000)))
    p, _, _ = classify(pack, f)
    assert p.returncode == 0, p.stderr
