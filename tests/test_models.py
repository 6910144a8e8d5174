"""`gfcg models`: fetching packs from a catalog safely.

A local HTTP server (127.0.0.1 only, a free port, Range requests, and
misbehaviour on demand: a connection cut after N bytes, a stall, wrong bytes)
serves small files the tests make; a test catalog points at it.  The packs
are tests/reference/make_packs.py's tiny-pixel, put together by "copy" steps,
or NVIDIA-format pickles (tests/test_convert_edm2.py's generator) converted by
the real converters/convert-edm2.  XDG_DATA_HOME and XDG_CACHE_HOME are temporary
folders: the user's own data is never touched.

What is asserted: a cut transfer resumes with a Range request for exactly the
missing bytes and installs; a wrong file (checksum, or a checksum recorded
at its first download) is deleted and nothing is installed; a transfer whose
end nothing proves (no Content-Length, no chunked end, no catalog size or
checksum) is neither installed nor recorded; one longer than the catalog
allows is stopped and deleted; a refused connection leaves no empty .part; a
copy step takes only a {ROLE}; the free-space message gives the figures
it checks; a failing, an
interrupted (SIGINT) and a killed (SIGKILL) conversion leave no pack and no
staging folder (the killed one's is removed by the next command); a full
disk (RLIMIT_FSIZE, SIGXFSZ ignored: writes fail with EFBIG) says why and
leaves nothing half-installed; `--pack NAME` samples the installed pack (the
same PNG as `--pack DIR`); verify finds a changed or missing file; remove
works; list shows the installed state.
"""
import copy
import hashlib
import http.server
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GFCG = os.environ.get('GFCG_BIN') or shutil.which('gfcg')
PACK = 'tiny'
PACK_FILES = ['pack.json', 'main.safetensors', 'guide.safetensors', 'uncond.safetensors',
              'classifier.safetensors']


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the server

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), Handler)
        self.files = {}        # path -> bytes
        self.cut = {}          # path -> send this many bytes, then drop the connection (once)
        self.stall = {}        # path -> send this many bytes, then hang until released (once)
        self.no_length = set() # paths sent without Content-Length: the end is the close
        self.chunked = {}      # path -> None (whole) or bytes before a close without the last chunk
        self.log = []          # one dict per GET: path, range, status, sent
        self.release = threading.Event()

    def url(self, path):
        return f'http://127.0.0.1:{self.server_address[1]}/{path}'

    def requests_for(self, path):
        return [r for r in self.log if r['path'] == path]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        path = self.path.lstrip('/')
        rec = {'path': path, 'range': self.headers.get('Range'), 'status': 404, 'sent': 0}
        srv.log.append(rec)
        data = srv.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        if rec['range']:
            spec = rec['range'].split('=', 1)[1]
            first, _, last = spec.partition('-')
            start = int(first)
            end = int(last) + 1 if last else len(data)
            if start >= len(data):
                rec['status'] = 416
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{len(data)}')
                self.end_headers()
                return
            body, status = data[start:end], 206
        else:
            body = data
        rec['status'] = status
        crange = f'bytes {start}-{start + len(body) - 1}/{len(data)}' if status == 206 else None
        if path in srv.chunked:
            self.send_chunked(rec, status, crange, body, srv.chunked[path])
            return
        self.send_response(status)
        if path not in srv.no_length:
            self.send_header('Content-Length', str(len(body)))
        self.send_header('Accept-Ranges', 'bytes')
        if crange:
            self.send_header('Content-Range', crange)
        self.end_headers()
        if path in srv.cut:
            n = srv.cut.pop(path)
            self.wfile.write(body[:n])
            rec['sent'] = n
            self.wfile.flush()
            self.close_connection = True
            return
        if path in srv.stall:
            n = srv.stall.pop(path)
            self.wfile.write(body[:n])
            rec['sent'] = n
            self.wfile.flush()
            srv.release.wait(120)
            return
        self.send_body(rec, body)

    def send_body(self, rec, body):
        # In pieces, counting what got out before the client hung up.
        for i in range(0, len(body), 1 << 16):
            try:
                self.wfile.write(body[i:i + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            rec['sent'] = min(len(body), i + (1 << 16))

    def send_chunked(self, rec, status, crange, body, cut):
        self.protocol_version = 'HTTP/1.1'
        self.send_response(status)
        self.send_header('Transfer-Encoding', 'chunked')
        if crange:
            self.send_header('Content-Range', crange)
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True
        data = body if cut is None else body[:cut]
        for i in range(0, len(data), 4096):
            piece = data[i:i + 4096]
            self.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece))
        rec['sent'] = len(data)
        if cut is None:
            self.wfile.write(b'0\r\n\r\n')


@pytest.fixture
def server():
    srv = Server()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


# ---------------------------------------------------------------- the environment

class Env:
    """XDG folders, a catalog and the `gfcg` command for one test."""

    def __init__(self, tmp_path, server):
        self.tmp = tmp_path
        self.server = server
        self.data = tmp_path / 'xdg-data'
        self.cache = tmp_path / 'xdg-cache'
        self.models = self.data / 'gfcg' / 'models'
        self.downloads = self.cache / 'gfcg' / 'downloads'
        self.catalog = tmp_path / 'catalog.json'
        self.env = dict(os.environ, XDG_DATA_HOME=str(self.data), XDG_CACHE_HOME=str(self.cache),
                        GFCG_CATALOG=str(self.catalog))
        self.env.pop('GFCG_TOOLS_DIR', None)

    def write_catalog(self, files, packs):
        self.catalog.write_text(json.dumps({'format': 'gfcg-catalog', 'format_version': 1,
                                            'files': files, 'packs': packs}, indent=1))

    def serve(self, name, data, sha=True, size=True, **extra):
        """Serves data as NAME; returns its catalog entry."""
        self.server.files[name] = data
        return dict({'urls': [self.server.url(name)], 'file': name,
                     'size': len(data) if size else None,
                     'sha256': sha256(data) if sha is True else (sha or None),
                     'licence': 'CC0-1.0'}, **extra)

    def run(self, *args, check=None, timeout=600, **kw):
        if not GFCG:
            pytest.fail('engine binary not found: set GFCG_BIN', pytrace=False)
        p = subprocess.run([GFCG] + [str(a) for a in args], capture_output=True, text=True,
                           env=self.env, timeout=timeout, **kw)
        if check is not None:
            assert p.returncode == check, f'gfcg {args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}'
        return p

    def popen(self, *args, **kw):
        return subprocess.Popen([GFCG] + [str(a) for a in args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env, **kw)

    def staging(self):
        return sorted(p.name for p in self.models.glob('.*')) if self.models.exists() else []

    def assert_nothing_installed(self, name=PACK):
        assert not (self.models / name).exists(), f'{name} was installed'
        assert self.staging() == [], f'staging or trash left: {self.staging()}'


@pytest.fixture
def env(tmp_path, server):
    return Env(tmp_path, server)


def tiny_pack_bytes(d, title):
    """The bytes of tiny-pixel's files (ImageNet classes 0, 217, 482, 491),
    written under d; also the Get models window's tests' pack."""
    import make_packs
    make_packs.write_pack(str(d), 'tiny-pixel', {
        'title': title, 'kind': 'pixel', 'resolution': 16,
        'channels': 3, 'classes': make_packs.CLASSES, 'defaults': make_packs.DEFAULTS},
        make_packs.tiny_pixel_components(inet=False))
    return {f: (d / 'tiny-pixel' / f).read_bytes() for f in PACK_FILES}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_pack_bytes(tmp_path_factory.mktemp('tinypack'),
                           'tiny-pixel for the model manager tests')


def copy_pack(env, tiny, name=PACK, entries=None, steps_extra=()):
    """A catalog with one pack made of tiny-pixel's files by copy steps."""
    entries = entries or {}
    files, roles, steps = {}, {}, []
    for f in PACK_FILES:
        role = f.split('.')[0].replace('_', '-')
        role = 'pack-json' if f == 'pack.json' else role
        fid = f'tiny-{role}'
        files[fid] = entries.get(f) or env.serve(f, tiny[f])
        roles[role] = fid
        steps.append({'copy': '{' + role + '}', 'to': f})
    packs = {name: {'title': 'Tiny test pack', 'licence': 'CC0-1.0', 'files': roles,
                    'convert': steps + list(steps_extra), 'memory': '1 MB', 'time': '1 s'}}
    env.write_catalog(files, packs)
    return files, packs


# ---------------------------------------------------------------- list, fetch, --pack NAME

def test_fetch_installs_and_list_shows_it(env, tiny):
    copy_pack(env, tiny)
    p = env.run('models', 'list', check=0)
    line = next(l for l in p.stdout.splitlines() if l.startswith(PACK + ' '))
    assert 'not installed' in line and 'Tiny test pack' in p.stdout and 'CC0-1.0' in p.stdout
    assert 'draws:' not in p.stdout  # the catalog does not say
    cat = json.loads(env.catalog.read_text())
    cat['packs'][PACK].update(resolution=16, classes=[0, 217, 482, 491])
    env.catalog.write_text(json.dumps(cat))
    assert '    draws: 4 ImageNet classes at 16x16 px\n' in env.run('models', 'list', check=0).stdout
    p = env.run('models', 'fetch', PACK, check=0)
    assert f'installed {PACK}' in p.stdout
    d = env.models / PACK
    for f in PACK_FILES:
        assert (d / f).read_bytes() == tiny[f]
    man = json.loads((d / 'install-manifest.json').read_text())
    assert man['pack'] == PACK and set(man['files']) == set(PACK_FILES)
    assert man['files']['main.safetensors']['sha256'] == sha256(tiny['main.safetensors'])
    assert env.staging() == []
    line = next(l for l in env.run('models', 'list', check=0).stdout.splitlines()
                if l.startswith(PACK + ' '))
    assert 'installed' in line and 'not installed' not in line
    # A second fetch does nothing (no download).
    n = len(env.server.log)
    p = env.run('models', 'fetch', PACK, check=0)
    assert 'already installed' in p.stdout and len(env.server.log) == n


def test_pack_name_samples_the_installed_pack(env, tiny, tmp_path):
    copy_pack(env, tiny)
    env.run('models', 'fetch', PACK, check=0)
    by_name, by_dir = tmp_path / 'name.png', tmp_path / 'dir.png'
    env.run('sample', '--pack', PACK, '--class', 217, '--mode', 'gfcg', '--steps', 3, '--seed', 5,
            '--device', 'cpu', '--quiet', '--out', by_name, check=0)
    env.run('sample', '--pack', env.models / PACK, '--class', 217, '--mode', 'gfcg', '--steps', 3,
            '--seed', 5, '--device', 'cpu', '--quiet', '--out', by_dir, check=0)
    # The same pixels (the text chunk records the time taken).
    from PIL import Image
    assert Image.open(by_name).tobytes() == Image.open(by_dir).tobytes()
    info = env.run('info', '--pack', PACK, check=0).stdout
    assert 'English springer' in info
    p = env.run('info', '--pack', 'no-such-pack', check=1)
    assert "'no-such-pack' is neither a pack folder nor an installed pack" in p.stderr


# ---------------------------------------------------------------- resume

def test_cut_transfer_resumes_with_a_range_request(env, tiny):
    copy_pack(env, tiny)
    main = tiny['main.safetensors']
    cut = len(main) // 2
    env.server.cut['main.safetensors'] = cut
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'main.safetensors' in p.stderr
    part = env.downloads / 'main.safetensors.part'
    assert part.read_bytes() == main[:cut]
    env.assert_nothing_installed()

    p = env.run('models', 'fetch', PACK, check=0)
    assert 'resuming after' in p.stderr
    reqs = env.server.requests_for('main.safetensors')
    assert [r['range'] for r in reqs] == [None, f'bytes={cut}-']
    assert reqs[1]['status'] == 206 and reqs[1]['sent'] == len(main) - cut
    assert not part.exists()
    assert (env.models / PACK / 'main.safetensors').read_bytes() == main


def test_ctrl_c_during_download_keeps_the_part_and_resumes(env, tiny):
    copy_pack(env, tiny)
    main = tiny['main.safetensors']
    n = len(main) // 3
    env.server.stall['main.safetensors'] = n
    proc = env.popen('models', 'fetch', PACK)
    part = env.downloads / 'main.safetensors.part'
    deadline = time.time() + 60
    while not (part.exists() and part.stat().st_size == n) and time.time() < deadline:
        time.sleep(0.05)
    assert part.exists() and part.stat().st_size == n
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert 'interrupted' in err and 'kept' in err and 'nothing installed' in err
    assert part.read_bytes() == main[:n]
    env.assert_nothing_installed()
    env.server.release.set()
    env.run('models', 'fetch', PACK, check=0)
    assert env.server.requests_for('main.safetensors')[-1]['range'] == f'bytes={n}-'


# ---------------------------------------------------------------- wrong files

def test_corrupted_file_is_rejected(env, tiny):
    good = tiny['main.safetensors']
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    entry = env.serve('main.safetensors', bytes(bad), sha=sha256(good))
    entry['size'] = len(good)
    copy_pack(env, tiny, entries={'main.safetensors': entry})
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'wrong checksum' in p.stderr and sha256(good) in p.stderr
    assert 'deleted' in p.stderr and 'nothing was installed' in p.stderr
    assert not (env.downloads / 'main.safetensors').exists()
    assert not (env.downloads / 'main.safetensors.part').exists()
    env.assert_nothing_installed()


def test_wrong_size_is_rejected(env, tiny):
    entry = env.serve('main.safetensors', tiny['main.safetensors'])
    entry['size'] += 1
    entry['sha256'] = None
    copy_pack(env, tiny, entries={'main.safetensors': entry})
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'the catalog says' in p.stderr
    env.assert_nothing_installed()


def test_unpublished_checksum_is_recorded_and_enforced(env, tiny):
    entry = env.serve('main.safetensors', tiny['main.safetensors'], sha=None, size=False)
    copy_pack(env, tiny, entries={'main.safetensors': entry})
    p = env.run('models', 'fetch', PACK, check=0)
    assert 'recorded sha256 ' + sha256(tiny['main.safetensors']) in p.stderr
    rec = json.loads((env.data / 'gfcg' / 'recorded-checksums.json').read_text())
    assert rec['main.safetensors']['sha256'] == sha256(tiny['main.safetensors'])
    # The publisher's file changes: a fresh download no longer matches.
    env.run('models', 'remove', PACK, check=0)
    (env.downloads / 'main.safetensors').unlink()
    changed = bytearray(tiny['main.safetensors'])
    changed[100] ^= 1
    env.server.files['main.safetensors'] = bytes(changed)
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'its first download' in p.stderr and 'wrong checksum' in p.stderr
    env.assert_nothing_installed()


# ---------------------------------------------------------------- incomplete, overlong, unreachable

def recorded(env):
    path = env.data / 'gfcg' / 'recorded-checksums.json'
    return json.loads(path.read_text()) if path.exists() else {}


def unsized(env, tiny, name='main.safetensors', data=None, **extra):
    """A catalog whose NAME has neither size nor sha256 (as NVIDIA's pickles)."""
    entry = env.serve(name, tiny[name] if data is None else data, sha=None, size=False, **extra)
    copy_pack(env, tiny, entries={name: entry})
    return entry


def test_unframed_cut_is_neither_installed_nor_recorded(env, tiny):
    # No Content-Length, a close half way: it used to install (exit 0) and
    # record the half file's checksum, which then refused the whole file.
    main = tiny['main.safetensors']
    half = len(main) // 2
    unsized(env, tiny)
    env.server.no_length.add('main.safetensors')
    env.server.cut['main.safetensors'] = half
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'main.safetensors' not in recorded(env), 'the half file was trusted'
    assert 'cannot tell whether the download is complete' in p.stderr, p.stderr
    assert 'nothing was installed or recorded' in p.stderr
    env.assert_nothing_installed()
    assert (env.downloads / 'main.safetensors.part').read_bytes() == main[:half]
    # A framed answer for the rest (206 and its Content-Range total) completes it.
    env.server.no_length.clear()
    env.run('models', 'fetch', PACK, check=0)
    assert env.server.requests_for('main.safetensors')[-1]['range'] == f'bytes={half}-'
    assert recorded(env)['main.safetensors']['sha256'] == sha256(main)
    assert (env.models / PACK / 'main.safetensors').read_bytes() == main


def test_unframed_file_needs_a_size_or_checksum(env, tiny):
    main = tiny['main.safetensors']
    unsized(env, tiny)
    env.server.no_length.add('main.safetensors')
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'cannot tell whether the download is complete' in p.stderr, p.stderr
    assert recorded(env) == {} and not (env.downloads / 'main.safetensors').exists()
    env.assert_nothing_installed()
    # All of it came, unproven: a 416 whose Content-Range total is its length proves it.
    env.server.no_length.clear()
    env.run('models', 'fetch', PACK, check=0)
    last = env.server.requests_for('main.safetensors')[-1]
    assert last['range'] == f'bytes={len(main)}-' and last['status'] == 416
    assert recorded(env)['main.safetensors']['sha256'] == sha256(main)


def test_unframed_file_with_a_catalog_size_installs(env, tiny):
    main = tiny['main.safetensors']
    entry = env.serve('main.safetensors', main, sha=None)
    copy_pack(env, tiny, entries={'main.safetensors': entry})
    env.server.no_length.add('main.safetensors')
    env.run('models', 'fetch', PACK, check=0)
    assert recorded(env)['main.safetensors']['sha256'] == sha256(main)


def test_chunked_transfer_is_complete_at_its_last_chunk(env, tiny):
    main = tiny['main.safetensors']
    half = len(main) // 2
    unsized(env, tiny)
    env.server.chunked['main.safetensors'] = half      # closed before the last chunk
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'main.safetensors' in p.stderr and recorded(env) == {}
    env.assert_nothing_installed()
    assert (env.downloads / 'main.safetensors.part').read_bytes() == main[:half]
    env.server.chunked['main.safetensors'] = None      # the rest, with the last chunk
    env.run('models', 'fetch', PACK, check=0)
    assert env.server.requests_for('main.safetensors')[-1]['range'] == f'bytes={half}-'
    assert recorded(env)['main.safetensors']['sha256'] == sha256(main)


@pytest.mark.parametrize('framing', ['content-length', 'close'])
@pytest.mark.parametrize('limit', ['size', 'estimate'])
def test_overlong_download_is_stopped_and_deleted(env, tiny, limit, framing):
    main = tiny['main.safetensors']
    big = main + bytes(32 << 20)
    if limit == 'size':          # the catalog's size
        entry = env.serve('main.safetensors', big, sha=None)
        entry['size'] = allowed = len(main)
    else:                        # 4 times the catalog's estimate
        entry = env.serve('main.safetensors', big, sha=None, size=False,
                          approx_size=len(main) // 4)
        allowed = 4 * (len(main) // 4)
    copy_pack(env, tiny, entries={'main.safetensors': entry})
    if framing == 'close':
        env.server.no_length.add('main.safetensors')
    p = env.run('models', 'fetch', PACK, check=1)
    assert f'sends more than' in p.stderr and f'({allowed} bytes' in p.stderr, p.stderr
    assert not (env.downloads / 'main.safetensors.part').exists()
    assert not (env.downloads / 'main.safetensors').exists()
    assert recorded(env) == {}
    env.assert_nothing_installed()
    # Stopped early, not read to the end.
    assert env.server.requests_for('main.safetensors')[-1]['sent'] < len(big)


def test_failed_connections_leave_no_empty_part(env, tiny):
    import socket
    with socket.socket() as s:        # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        closed = s.getsockname()[1]
    entry = env.serve('main.safetensors', tiny['main.safetensors'])
    entry['urls'] = [env.server.url('gone/main.safetensors'),
                     f'http://127.0.0.1:{closed}/main.safetensors']
    copy_pack(env, tiny, entries={'main.safetensors': entry})
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'HTTP 404; trying the next address' in p.stderr, p.stderr
    assert f'127.0.0.1:{closed}' in p.stderr
    assert not (env.downloads / 'main.safetensors.part').exists()
    env.assert_nothing_installed()


def test_copy_step_takes_only_a_role(env, tiny):
    copy_pack(env, tiny)
    cat = json.loads(env.catalog.read_text())
    for source in (str(REPO / 'README.md'), '{out}/pack.json', '{name}', '{main}.bak',
                   'x{main}', '{main}{guide}'):
        c = copy.deepcopy(cat)
        c['packs'][PACK]['convert'].append({'copy': source, 'to': 'extra.bin'})
        env.catalog.write_text(json.dumps(c))
        p = env.run('models', 'fetch', PACK, check=1)
        assert f"pack '{PACK}': a copy step takes one {{ROLE}} placeholder" in p.stderr, p.stderr
        assert f'not "{source}"' in p.stderr and str(env.catalog) in p.stderr
        assert env.server.log == []
        env.assert_nothing_installed()
    # A role named like a placeholder would be ambiguous.
    c = copy.deepcopy(cat)
    c['packs'][PACK]['files']['out'] = 'tiny-main'
    env.catalog.write_text(json.dumps(c))
    p = env.run('models', 'fetch', PACK, check=1)
    assert "other than 'out' and 'name'" in p.stderr, p.stderr


def format_size(n):
    """models_format_size."""
    if n >= 1000000000:
        return '%.2f GB' % (n / 1e9)
    if n >= 100000000:
        return '%.0f MB' % (n / 1e6)
    if n >= 1000000:
        return '%.1f MB' % (n / 1e6)
    if n >= 1000:
        return '%.0f kB' % (n / 1e3)
    return f'{n} B'


def test_free_space_message_states_the_required_margin(env, tiny):
    # The check wants the size plus 5% and 100 MB; the message gave the size alone.
    entry = env.serve('main.safetensors', tiny['main.safetensors'], sha=None)
    entry['size'] = 10 ** 15
    files, _ = copy_pack(env, tiny, entries={'main.safetensors': entry})
    need = sum(f['size'] for f in files.values())
    margin = need // 20 + 100000000
    p = env.run('models', 'fetch', PACK, check=1)
    assert (f'not enough free space: the downloads need {format_size(need + margin)} free in '
            f'{env.downloads} (about {format_size(need)}, plus {format_size(margin)} to spare: '
            f'5% and 100 MB), it has ') in p.stderr, p.stderr
    assert env.server.log == []
    env.assert_nothing_installed()


# ---------------------------------------------------------------- interrupted installs

def test_failing_conversion_leaves_nothing(env, tiny):
    # The real converter, given a safetensors file instead of a pickle.
    step = {'tool': 'convert-edm2', 'args': ['--main', '{main}', '--out', '{out}']}
    copy_pack(env, tiny, steps_extra=[step])
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'convert-edm2 failed' in p.stderr
    env.assert_nothing_installed()
    # The downloads stay cached, checked.
    assert (env.downloads / 'main.safetensors').read_bytes() == tiny['main.safetensors']


def test_pack_that_does_not_load_is_not_installed(env, tiny):
    copy_pack(env, tiny)
    cat = json.loads(env.catalog.read_text())
    cat['packs'][PACK]['convert'] = [s for s in cat['packs'][PACK]['convert']
                                     if s['to'] != 'main.safetensors']
    env.catalog.write_text(json.dumps(cat))
    p = env.run('models', 'fetch', PACK, check=1)
    assert 'does not load' in p.stderr and 'main.safetensors' in p.stderr
    env.assert_nothing_installed()


SLOW_TOOL = '''import os, sys, time
out = sys.argv[sys.argv.index('--out') + 1]
open(os.path.join(out, 'half-written.safetensors'), 'w').write(str(os.getpid()))
time.sleep(120)
'''


def start_slow_conversion(env, tiny):
    tools = env.tmp / 'tools'
    tools.mkdir()
    (tools / 'convert-slow').write_text(SLOW_TOOL)
    env.env['GFCG_TOOLS_DIR'] = str(tools)
    copy_pack(env, tiny, steps_extra=[{'tool': 'convert-slow', 'args': ['--out', '{out}']}])
    proc = env.popen('models', 'fetch', PACK)
    deadline = time.time() + 120
    while time.time() < deadline:
        marks = list(env.models.glob(f'.{PACK}.partial-*/half-written.safetensors'))
        if marks and marks[0].read_text():
            return proc, int(marks[0].read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail('the conversion never started')


def wait_dead(pid, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
            # A zombie whose parent died is reaped by init soon.
            with open(f'/proc/{pid}/stat') as f:
                if f.read().split(') ')[1].startswith('Z'):
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_during_conversion_removes_the_staging_folder(env, tiny):
    proc, tool_pid = start_slow_conversion(env, tiny)
    assert env.staging() != []
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and 'interrupted' in err, err
    assert wait_dead(tool_pid), 'the converter outlived the interruption'
    env.assert_nothing_installed()


def test_killed_during_conversion_leaves_no_pack(env, tiny):
    proc, tool_pid = start_slow_conversion(env, tiny)
    proc.kill()
    proc.communicate(timeout=30)
    # The converter dies with it (PR_SET_PDEATHSIG), the pack is absent and
    # the half-made folder is hidden: never listed, never loadable by name.
    assert wait_dead(tool_pid), 'the converter outlived gfcg'
    assert not (env.models / PACK).exists()
    assert len(env.staging()) == 1
    env.env.pop('GFCG_TOOLS_DIR')
    line = next(l for l in env.run('models', 'list', check=0).stdout.splitlines()
                if l.startswith(PACK + ' '))
    assert 'not installed' in line
    # ... and the next command removed it (its lock died with the process).
    env.assert_nothing_installed()
    assert env.run('info', '--pack', PACK).returncode == 1


# ---------------------------------------------------------------- disk full

def limit_file_size(nbytes):
    def setup():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return setup


def test_disk_full_during_download(env, tiny):
    copy_pack(env, tiny)
    limit = 64 * 1024
    assert len(tiny['main.safetensors']) > 2 * limit
    p = env.run('models', 'fetch', PACK, check=1, preexec_fn=limit_file_size(limit))
    assert 'File too large' in p.stderr and 'disk is full' in p.stderr, p.stderr
    env.assert_nothing_installed()
    # With room again, the fetch resumes from what was written.
    assert (env.downloads / 'main.safetensors.part').stat().st_size == limit
    env.run('models', 'fetch', PACK, check=0)
    assert env.server.requests_for('main.safetensors')[-1]['range'] == f'bytes={limit}-'


def test_disk_full_during_conversion(env, tiny):
    copy_pack(env, tiny)
    env.run('models', 'fetch', PACK, check=0)      # fills the download cache
    env.run('models', 'remove', PACK, check=0)
    p = env.run('models', 'fetch', PACK, check=1, preexec_fn=limit_file_size(64 * 1024))
    assert 'in the download cache, checked' in p.stderr
    assert 'File too large' in p.stderr, p.stderr
    env.assert_nothing_installed()


# ---------------------------------------------------------------- verify, remove

def test_verify_detects_a_modified_file(env, tiny):
    copy_pack(env, tiny)
    env.run('models', 'fetch', PACK, check=0)
    p = env.run('models', 'verify', PACK, check=0)
    assert f'ok: loads; {len(PACK_FILES)} files match' in p.stdout
    f = env.models / PACK / 'guide.safetensors'
    data = bytearray(f.read_bytes())
    data[-5] ^= 0x01                                 # one bit of one weight: still loads
    f.write_bytes(bytes(data))
    p = env.run('models', 'verify', PACK, check=1)
    assert 'FAILED: guide.safetensors changed since it was installed' in p.stdout
    assert sha256(tiny['guide.safetensors']) in p.stdout
    f.unlink()
    p = env.run('models', 'verify', check=1)          # every installed pack
    assert 'guide.safetensors is missing' in p.stdout
    lines = p.stdout.splitlines()      # the default pack first, then the fetched ones
    assert 'imagenette-64: ok: loads (no install manifest' in lines[0]
    assert lines[-1].startswith(str(env.models / PACK))


def test_remove(env, tiny):
    copy_pack(env, tiny)
    env.run('models', 'fetch', PACK, check=0)
    p = env.run('models', 'remove', PACK, check=0)
    assert f'removed {PACK}' in p.stdout
    env.assert_nothing_installed()
    assert (env.downloads / 'main.safetensors').exists()   # the cache stays
    assert 'not installed' in next(l for l in env.run('models', 'list', check=0).stdout.splitlines()
                                   if l.startswith(PACK + ' '))
    p = env.run('models', 'remove', PACK, check=1)
    assert 'is not installed' in p.stderr
    p = env.run('models', 'remove', 'imagenette-64', check=1)
    assert 'came with gfcg' in p.stderr
    p = env.run('models', 'remove', '../x', check=1)
    assert 'not a pack name' in p.stderr


def test_force_reinstalls_and_shipped_names_stay(env, tiny):
    copy_pack(env, tiny)
    env.run('models', 'fetch', PACK, check=0)
    f = env.models / PACK / 'guide.safetensors'
    f.write_bytes(b'broken')
    env.run('models', 'fetch', '--force', PACK, check=0)
    assert f.read_bytes() == tiny['guide.safetensors']
    assert env.staging() == []
    # A catalog pack may not shadow a pack that comes with gfcg.
    copy_pack(env, tiny, name='imagenette-64')
    p = env.run('models', 'fetch', 'imagenette-64', check=1)
    assert "a pack named 'imagenette-64' already comes with gfcg" in p.stderr
    assert not (env.models / 'imagenette-64').exists()


def test_bad_catalogs_are_refused(env, tiny):
    copy_pack(env, tiny)
    cat = json.loads(env.catalog.read_text())
    cases = [
        (lambda c: c['packs'][PACK]['convert'].append({'tool': '../../bin/sh', 'args': []}),
         "'tool' must be a converter name"),
        (lambda c: c['packs'][PACK]['convert'].append({'copy': '{main}', 'to': '../escape'}),
         'a path inside the pack'),
        (lambda c: c['files']['tiny-main'].update(urls=['file:///etc/passwd']),
         'http:// or https://'),
        (lambda c: c['files']['tiny-main'].update(sha256='XYZ'), '64 lower-case hex'),
        (lambda c: c['packs'][PACK]['files'].update(main='nope'), "which is not in 'files'"),
        (lambda c: c['packs'][PACK]['convert'].append({'tool': 'convert-edm2', 'args': ['{what}']}),
         'unknown placeholder {what}'),
        (lambda c: c['packs'][PACK].update(classes=[217, 1000]), "'classes' \"imagenet-1k\" or"),
        (lambda c: c['packs'][PACK].update(classes='all'), "'classes' \"imagenet-1k\" or"),
        (lambda c: c['packs'][PACK].update(resolution='64'), "'resolution' must be a number"),
    ]
    for change, message in cases:
        c = copy.deepcopy(cat)
        change(c)
        env.catalog.write_text(json.dumps(c))
        p = env.run('models', 'fetch', PACK, check=1)
        assert message in p.stderr, (message, p.stderr)
        env.assert_nothing_installed()


# ---------------------------------------------------------------- the real converter

@pytest.mark.parametrize('converter', ['native', 'python'])
def test_fetch_converts_nvidia_pickles(env, monkeypatch, tmp_path, converter):
    """main + guide pickles in NVIDIA's format -> convert-edm2 (native, or the
    Python converters/convert-edm2 with GFCG_CONVERTER=python) -> an installed
    pack that samples in atg mode, and no embedded code ran."""
    env.env['GFCG_CONVERTER'] = converter
    import make_packs
    import test_convert_edm2 as t
    pkg = type(sys)('torch_utils')
    pkg.persistence = t._fake_persistence
    monkeypatch.setitem(sys.modules, 'torch_utils', pkg)
    monkeypatch.setitem(sys.modules, 'torch_utils.persistence', t._fake_persistence)
    cfg = make_packs.unet_config()
    main = make_packs.make_unet(21, **cfg)[1]
    guide = make_packs.make_relative(22, main, **cfg)[1]
    marker = tmp_path / 'MARKER-module_src-ran'
    src = t._payload(marker)
    names = {'main': 'edm2-img16-s-0001073-0.075.pkl', 'guide': 'edm2-img16-xs-0000134-0.110.pkl'}
    files = {}
    for role, net in (('main', main), ('guide', guide)):
        p = t.write_pickle(tmp_path / names[role], t.nv_snapshot(net, cfg, src))
        files[role] = env.serve(names[role], p.read_bytes())
    env.write_catalog(files, {'edm2-tiny': {
        'title': 'tiny NVIDIA-format pair', 'licence': 'CC-BY-NC-SA-4.0',
        'files': {'main': 'main', 'guide': 'guide'},
        'convert': [{'tool': 'convert-edm2', 'args': ['--main', '{main}', '--guide', '{guide}',
                                                      '--out', '{out}', '--name', '{name}',
                                                      '--guidance', 1.5]}]}})
    p = env.run('models', 'fetch', 'edm2-tiny', check=0)
    assert 'converting: convert-edm2' in p.stderr
    assert not marker.exists(), 'module_src was executed'
    meta = json.loads((env.models / 'edm2-tiny' / 'pack.json').read_text())
    assert meta['name'] == 'edm2-tiny' and set(meta['components']) == {'main', 'guide'}
    assert meta['defaults'] == {'mode': 'atg', 'guidance': 1.5}
    env.run('sample', '--pack', 'edm2-tiny', '--class', 2, '--mode', 'atg', '--steps', 2,
            '--device', 'cpu', '--quiet', '--out', tmp_path / 'x.png', check=0)
    assert 'ok: loads' in env.run('models', 'verify', 'edm2-tiny', check=0).stdout


@pytest.fixture(scope='module')
def catalog_inputs(tmp_path_factory):
    """The kinds of files the shipped catalog installs, small: NVIDIA-format
    pickles (a pixel main + guide, a latent main + uncond), an SD VAE file with
    decoder and encoder (norm_num_groups 32: no config.json, as the catalog),
    TAESD's decoder and encoder, a torchvision-format ResNet-50 .pth and, when
    ../shared/models has it, the Coral MobileNetV2."""
    import make_packs
    import test_convert_edm2 as t
    from test_convert_native import CORAL, resnet50_state_dict
    from gfcg_convert.nets import taesd as taesd_ref
    from gfcg_convert.nets import vae as vae_ref
    from safetensors.torch import save_file
    import torch
    d = tmp_path_factory.mktemp('catalog-inputs')
    pkg = type(sys)('torch_utils')
    pkg.persistence = t._fake_persistence
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, 'torch_utils', pkg)
        mp.setitem(sys.modules, 'torch_utils.persistence', t._fake_persistence)
        src = t._payload(d / 'MARKER-module_src-ran')
        cfg = make_packs.unet_config()
        main = make_packs.make_unet(21, **cfg)[1]
        guide = make_packs.make_relative(22, main, **cfg)[1]
        lcfg = dict(img_resolution=8, img_channels=4, label_dim=5, model_channels=16, channel_mult=[1, 2],
                    num_blocks=1, attn_resolutions=[4])
        lmain = make_packs.make_unet(23, **lcfg)[1]
        ucfg = dict(lcfg, label_dim=0)
        luncond = make_packs.make_unet(24, **ucfg)[1]
        files = {}
        for name, net, c in (('edm2-img16-s-0001073-0.045.pkl', main, cfg),
                             ('edm2-img16-xs-0000134-0.110.pkl', guide, cfg),
                             ('edm2-img512-xs-2147483-0.045.pkl', lmain, lcfg),
                             ('edm2-img512-xs-uncond-2147483-0.045.pkl', luncond, ucfg)):
            files[name] = t.write_pickle(d / name, t.nv_snapshot(net, c, src)).read_bytes()
    vcfg = dict(block_out_channels=[32, 32, 64, 64], layers_per_block=1, latent_channels=4,
                norm_num_groups=32)
    vae = {**vae_ref.SDVAEDecoder(**vcfg).state_dict(), **vae_ref.SDVAEEncoder(**vcfg).state_dict()}
    save_file(vae_ref.legacy_names({k: v.contiguous() for k, v in vae.items()}), str(d / 'vae.safetensors'))
    save_file({k: v.contiguous() for k, v in taesd_ref.TAESDDecoder().state_dict().items()},
              str(d / 'taesd_decoder.safetensors'))
    save_file({k: v.contiguous() for k, v in taesd_ref.TAESDEncoder().state_dict().items()},
              str(d / 'taesd_encoder.safetensors'))
    torch.save(resnet50_state_dict(9, torch.float16), d / 'resnet50-0676ba61.pth')
    for name in ('vae.safetensors', 'taesd_decoder.safetensors', 'taesd_encoder.safetensors',
                 'resnet50-0676ba61.pth'):
        files[name] = (d / name).read_bytes()
    if CORAL.exists():
        files['mobilenet_v2_1.0_224_quant.tflite'] = CORAL.read_bytes()
    return files, d / 'MARKER-module_src-ran'


def catalog_like_shipped(env, files):
    """Two packs built as the shipped catalog builds img64-s-atg and img512-xs-cfg."""
    entries = {n: env.serve(n, data) for n, data in files.items()}
    coral = 'mobilenet_v2_1.0_224_quant.tflite' in files
    packs = {
        'px-atg': {'title': 'pixel pair', 'licence': 'CC-BY-NC-SA-4.0',
                   'files': {'main': 'edm2-img16-s-0001073-0.045.pkl', 'guide': 'edm2-img16-xs-0000134-0.110.pkl',
                             'classifier': 'resnet50-0676ba61.pth'},
                   'convert': [{'tool': 'convert-edm2', 'args': ['--main', '{main}', '--guide', '{guide}',
                                                                '--out', '{out}', '--name', '{name}', '--fp16',
                                                                '--guidance', '1.7']},
                               {'tool': 'convert-classifier', 'args': ['--pack', '{out}', '--resnet50',
                                                                       '{classifier}', '--fp16']}]},
        'lat-cfg': {'title': 'latent pack', 'licence': 'CC-BY-NC-SA-4.0',
                    'files': {'main': 'edm2-img512-xs-2147483-0.045.pkl',
                              'uncond': 'edm2-img512-xs-uncond-2147483-0.045.pkl',
                              'classifier': 'mobilenet_v2_1.0_224_quant.tflite' if coral else 'resnet50-0676ba61.pth',
                              'decoder': 'vae.safetensors', 'preview': 'taesd_decoder.safetensors',
                              'preview-encoder': 'taesd_encoder.safetensors'},
                    'convert': [{'tool': 'convert-edm2', 'args': [
                                    '--main', '{main}', '--uncond', '{uncond}', '--out', '{out}', '--name',
                                    '{name}', '--fp16', '--guidance', '1.4', '--vae', '{decoder}', '--taesd',
                                    '{preview}', '--encoder', '--taesd-encoder', '{preview-encoder}']},
                                {'tool': 'convert-classifier', 'args': [
                                    '--pack', '{out}', '--mobilenet' if coral else '--resnet50', '{classifier}',
                                    '--fp16']}]},
    }
    env.write_catalog(entries, packs)
    return packs


def test_fetch_without_python(env, catalog_inputs, tmp_path):
    """`gfcg models fetch` converts every kind of file the catalog installs with
    no python3 on PATH and no converters to find (the native converters, in
    process), into the very files the Python converters make from the same
    downloads; the packs load, verify and sample, and no embedded code ran."""
    from test_convert_native import same_files
    files, marker = catalog_inputs
    packs = catalog_like_shipped(env, files)
    empty = tmp_path / 'empty-bin'
    empty.mkdir()
    env.env.update(PATH=str(empty), GFCG_TOOLS_DIR=str(empty))
    env.env.pop('GFCG_PYTHON', None)
    env.env.pop('GFCG_CONVERTER', None)
    for name in packs:
        p = env.run('models', 'fetch', name, check=0)
        assert 'converting: convert-edm2' in p.stderr and 'converting: convert-classifier' in p.stderr
        assert 'python3 not found' not in p.stderr, p.stderr
        assert 'ok: loads' in env.run('models', 'verify', name, check=0).stdout
        # The Python converters on the same downloads: the same files.
        ref = tmp_path / f'python-{name}'
        for step in packs[name]['convert']:
            subst = {'out': str(ref), 'name': name}
            subst.update((role, str(env.downloads / fid)) for role, fid in packs[name]['files'].items())
            args = [a.format(**subst) for a in step['args']]
            q = subprocess.run([sys.executable, str(REPO / 'converters' / step['tool'])] + args,
                               capture_output=True, text=True, timeout=600)
            assert q.returncode == 0, q.stderr
        installed = env.models / name
        (tmp_path / 'installed').mkdir(exist_ok=True)
        shutil.copytree(installed, tmp_path / 'installed' / name, ignore=shutil.ignore_patterns('install-manifest.json'))
        same_files(ref, tmp_path / 'installed' / name)
    meta = json.loads((env.models / 'lat-cfg' / 'pack.json').read_text())
    assert set(meta['components']) == {'main', 'uncond', 'classifier', 'decoder', 'preview', 'encoder',
                                       'preview-encoder'}
    env.run('sample', '--pack', 'px-atg', '--class', 2, '--mode', 'gfcg+atg', '--steps', 2, '--device',
            'cpu', '--quiet', '--out', tmp_path / 'x.png', check=0)
    assert not marker.exists(), 'module_src was executed'


def test_fetch_refuses_a_hostile_pickle_natively(env, tmp_path):
    """A pickle that would run code: refused by the native converter, named,
    nothing installed, nothing run."""
    marker = tmp_path / 'executed'
    evil = f"(dp0\nS'ema'\np1\ncos\nsystem\n(S'touch {marker}'\ntR.".encode()
    env.write_catalog({'evil': env.serve('edm2-img64-s-0000001-0.100.pkl', evil)}, {
        'evil-pack': {'title': 'hostile', 'licence': 'CC0-1.0', 'files': {'main': 'evil'},
                      'convert': [{'tool': 'convert-edm2', 'args': ['--main', '{main}', '--out', '{out}']}]}})
    p = env.run('models', 'fetch', 'evil-pack', check=1)
    assert 'convert-edm2 failed' in p.stderr and 'refused: the pickle asks for the global os.system' in p.stderr
    env.assert_nothing_installed('evil-pack')
    assert not marker.exists()


def test_converter_switch(env, tmp_path):
    """GFCG_CONVERTER=python runs the Python converters (here without python3:
    a clear message); an unknown value is refused."""
    env.write_catalog({'m': env.serve('m.pkl', b'')}, {
        'p': {'title': 't', 'licence': 'CC0-1.0', 'files': {'main': 'm'},
              'convert': [{'tool': 'convert-edm2', 'args': ['--main', '{main}', '--out', '{out}']}]}})
    empty = tmp_path / 'empty-bin'
    empty.mkdir()
    env.env.update(PATH=str(empty), GFCG_CONVERTER='python')
    p = env.run('models', 'fetch', 'p', check=1)
    assert 'python3 not found: convert-edm2 is run as a Python program here' in p.stderr
    env.env['GFCG_CONVERTER'] = 'perl'
    p = env.run('models', 'fetch', 'p', check=1)
    assert 'GFCG_CONVERTER=perl: use native (the default) or python' in p.stderr
    env.env['GFCG_CONVERTER'] = 'native'
    p = env.run('models', 'fetch', 'p', check=1)
    assert 'convert-edm2 failed' in p.stderr and 'empty file (0 bytes), not a pickle' in p.stderr
    env.assert_nothing_installed('p')


def test_shipped_catalog_is_valid(tmp_path):
    """The real catalog parses (list) and names only NVIDIA's, Hugging Face's,
    Coral's and PyTorch's servers; EDM2 files are never pinned to a mirror."""
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / 'd'), XDG_CACHE_HOME=str(tmp_path / 'c'))
    env.pop('GFCG_CATALOG', None)
    cat_path = REPO / 'data' / 'models' / 'catalog.json'
    p = subprocess.run([GFCG, 'models', 'list', '--catalog', str(cat_path)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    cat = json.loads(cat_path.read_text())
    for name in ('img64-s-atg', 'img512-xs-cfg', 'img512-s-atg', 'img512-xxl-atg'):
        assert name in p.stdout and 'not installed' in p.stdout
        pk = cat['packs'][name]
        assert pk['memory'] and pk['time'] and 'CC-BY-NC-SA-4.0' in pk['licence']
    hosts = ('https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions/',
             'https://huggingface.co/', 'https://github.com/google-coral/',
             'https://raw.githubusercontent.com/google-coral/', 'https://download.pytorch.org/')
    for fid, f in cat['files'].items():
        assert all(u.startswith(hosts) for u in f['urls']), fid
        if f['licence'] == 'CC-BY-NC-SA-4.0':
            assert f['urls'][0].startswith(hosts[0]) and f['file'].startswith('edm2-img')
    assert cat['files']['coral-mobilenet-v2']['sha256'] == \
        '7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776'
    assert cat['files']['coral-mobilenet-v2']['size'] == 3610798
    # Every step's arguments are ones its converter accepts (argparse exits
    # on unknown options; the missing input files are a later, returned error).
    from gfcg_convert import classifier_pack, edm2_pickle
    mains = {'convert-edm2': edm2_pickle.main, 'convert-classifier': classifier_pack.main}
    for name, pk in cat['packs'].items():
        subst = {'out': str(tmp_path / 'none' / name), 'name': name}
        subst.update((role, str(tmp_path / 'none' / fid)) for role, fid in pk['files'].items())
        for step in pk['convert']:
            args = [a.format(**subst) for a in step['args']]
            try:
                rc = mains[step['tool']](args)
            except SystemExit as e:
                pytest.fail(f'{name}: {step["tool"]} refuses its arguments {args}: {e}')
            assert rc != 0
            # ... and so does the native one (gfcg convert, what fetch runs)
            q = subprocess.run([GFCG, 'convert', step['tool'].split('-', 1)[1]] + args,
                               capture_output=True, text=True, timeout=60)
            assert q.returncode != 0 and 'No such file or directory' in q.stderr, (name, q.stderr)
            assert '--help' not in q.stderr, (name, q.stderr)
