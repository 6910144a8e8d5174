"""Convert a torchvision checkpoint (e.g. resnet50-0676ba61.pth) into safetensors.

    python3 -m gfcg_convert.torchvision_to_safetensors resnet50-0676ba61.pth out.safetensors [--fp16]

torchvision publishes state dicts written by `torch.save`: a zip archive
holding a pickle (`*/data.pkl`) whose tensors point, through persistent ids,
at raw storages (`*/data/<key>`); older files use torch's legacy format (a
sequence of pickles followed by the raw storages).  `torch.load` would run
whatever globals the pickle names.  This converter never does: it reuses
the restricted unpickler of edm2_pickle.py (globals only from
an allowlist, BUILD only onto plain dicts and inert stand-ins, tensors
rebuilt by our own checked `_rebuild_tensor_v2`) with a narrower allowlist
(an OrderedDict, tensors, parameters and the storage types) and its own
persistent-id reader that only accepts ('storage', <storage type>, key,
location, numel) and copies the bytes of that storage out of the archive.

The output has torchvision's keys unchanged (the engine's "resnet-50" reads
them and folds batch norm itself), minus `*.num_batches_tracked` (an int64
training counter that inference never uses), checked against the ResNet-50
layout: every key present with its shape, nothing else.
"""
import argparse
import collections
import hashlib
import os
import pickle
import struct
import sys
import zipfile

from . import edm2_pickle
from .edm2_pickle import RefusedPickle, ConvertError, BadPickle, describe  # noqa: F401

LICENCE = 'BSD-3-Clause'
LICENCE_NOTE = ('torchvision ImageNet weights (https://github.com/pytorch/vision), distributed '
                'under torchvision\'s BSD 3-Clause licence. Converted locally by '
                'converters/convert-classifier from a file the user downloaded.')
URL_ROOT = 'https://download.pytorch.org/models'

# torch.<Name>Storage -> dtype name (looked up on torch only when a storage is built).
STORAGE_TYPES = {'FloatStorage': 'float32', 'HalfStorage': 'float16', 'BFloat16Storage': 'bfloat16',
                 'DoubleStorage': 'float64', 'LongStorage': 'int64', 'IntStorage': 'int32',
                 'ShortStorage': 'int16', 'CharStorage': 'int8', 'ByteStorage': 'uint8',
                 'BoolStorage': 'bool'}
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001


class StorageType:
    """What the pickle gets for torch.FloatStorage & co: a dtype name, nothing callable."""

    def __init__(self, name):
        self.name, self.dtype = name, STORAGE_TYPES[name]

    def __call__(self, *args, **kwargs):
        raise RefusedPickle(f'refused: the pickle calls torch.{self.name}')


def _allowed():
    keep = [('collections', 'OrderedDict'), ('torch._utils', '_rebuild_tensor_v2'),
            ('torch._utils', '_rebuild_parameter'),
            ('torch._utils', '_rebuild_parameter_with_state')]
    table = {k: edm2_pickle.ALLOWED[k] for k in keep}
    table.update({('torch', n): StorageType(n) for n in STORAGE_TYPES})
    return table


class StateDictUnpickler(edm2_pickle.RestrictedUnpickler):
    """edm2_pickle's unpickler with the state-dict allowlist and torch.save's
    storage references.  `storage(key, dtype, numel)` supplies the storages."""

    ALLOWED = _allowed()

    def __init__(self, f, storage, size=None):
        super().__init__(f, size)
        self._storage = storage

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedPickle(
                f'refused: the pickle asks for the global {module}.{name}, which is not on the '
                f'allowlist of a state dict of tensors (nothing was executed)') from None

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy adds a view entry (None).
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != 'storage' or
                not isinstance(pid[1], StorageType) or not isinstance(pid[2], str) or
                not isinstance(pid[3], str) or not isinstance(pid[4], int) or pid[4] < 0 or
                (len(pid) == 6 and pid[5] is not None)):
            raise RefusedPickle(f'refused: unexpected persistent id {pid!r:.80}')
        return self._storage(pid[2], pid[1].dtype, pid[4])


def _typed_storage(data, dtype_name, numel):
    import torch
    dtype = getattr(torch, dtype_name)
    size = torch.empty((), dtype=dtype).element_size()
    if len(data) != numel * size:
        raise RefusedPickle(f'storage of {numel} {dtype_name} has {len(data)} bytes')
    flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else \
        torch.empty(0, dtype=torch.uint8)
    return torch.storage.TypedStorage(wrap_storage=flat.untyped_storage(), dtype=dtype,
                                      _internal=True)


def _load_zip(path):
    with zipfile.ZipFile(path) as z:
        pkls = [n for n in z.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
        if len(pkls) != 1:
            raise ConvertError(f'{path}: a zip archive without exactly one */data.pkl '
                               '(not a torch.save file)')
        root = pkls[0][:-len('data.pkl')]
        if root + 'byteorder' in z.namelist() and z.read(root + 'byteorder') != b'little':
            raise ConvertError(f'{path}: big-endian tensors are not supported')

        def storage(key, dtype, numel):
            try:
                data = z.read(f'{root}data/{key}')
            except KeyError:
                raise ConvertError(f'{path}: storage {key} is missing from the archive') from None
            return _typed_storage(data, dtype, numel)

        with z.open(pkls[0]) as f:
            return StateDictUnpickler(f, storage, z.getinfo(pkls[0]).file_size).load()


def _load_legacy(path):
    """torch's pre-1.6 format: magic, protocol, sys_info, the object (storages
    by reference), the list of storage keys, then each storage's bytes."""
    pending, limit = {}, os.path.getsize(path)

    def storage(key, dtype, numel):
        if numel * _elsize(dtype) > limit:
            raise ConvertError(f'{path}: storage {key} is larger than the file')
        if key not in pending:
            pending[key] = (dtype, numel, _typed_storage(
                bytes(numel * _elsize(dtype)), dtype, numel))
        return pending[key][2]

    with open(path, 'rb') as f:
        plain = lambda: StateDictUnpickler(f, _no_storage).load()  # noqa: E731
        if plain() != LEGACY_MAGIC or plain() != LEGACY_PROTOCOL:
            raise ConvertError(f'{path}: neither a zip archive nor a legacy torch.save file')
        info = plain()
        if not isinstance(info, dict) or not info.get('little_endian', True):
            raise ConvertError(f'{path}: big-endian tensors are not supported')
        obj = StateDictUnpickler(f, storage).load()
        keys = plain()
        if not isinstance(keys, list) or sorted(keys) != sorted(pending):
            raise ConvertError(f'{path}: storage list does not match the tensors')
        import torch
        for key in keys:
            dtype, numel, st = pending[key]
            (n,) = struct.unpack('<q', f.read(8))
            data = f.read(n * _elsize(dtype))
            if n != numel or len(data) != numel * _elsize(dtype):
                raise ConvertError(f'{path}: storage {key} is truncated')
            if numel:
                dst = torch.empty(0, dtype=getattr(torch, dtype)).set_(st._untyped_storage)
                dst.copy_(torch.frombuffer(bytearray(data), dtype=getattr(torch, dtype)))
    return obj


def _no_storage(key, dtype, numel):
    raise RefusedPickle('refused: a storage outside the object pickle')


def _elsize(dtype_name):
    import torch
    return torch.empty((), dtype=getattr(torch, dtype_name)).element_size()


def load_state_dict(path):
    """{key: tensor} of a torch.save'd state dict, read without executing anything."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise ConvertError(f'{path}: empty file (0 bytes), not a torch.save file')
    try:
        obj = _load_zip(path) if head.startswith(b'PK') else _load_legacy(path)
    except RefusedPickle as e:
        raise RefusedPickle(f'{path}: {e}') from None
    except BadPickle as e:
        raise ConvertError(f'{path}: not a readable torch.save file: {e}') from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error) as e:
        raise ConvertError(f'{path}: not a readable torch.save file ({describe(e)})') from None
    edm2_pickle.refuse_bad_tensors(obj, path)
    import torch
    # Training scripts wrap the weights: {'model': ...} / {'state_dict': ...}.
    if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in ('model', 'state_dict') \
            and isinstance(next(iter(obj.values())), dict):
        obj = next(iter(obj.values()))
    if not isinstance(obj, dict):
        raise ConvertError(f'{path}: holds a {type(obj).__name__}, not a state dict')
    out = collections.OrderedDict()
    for k, v in obj.items():
        # OrderedDict's pickled __dict__ (torch's per-module _metadata) arrives
        # through the restricted BUILD as an entry: version numbers only.
        if k == '_metadata' and isinstance(v, dict):
            continue
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise ConvertError(f'{path}: entry {k!r} is a {type(v).__name__}, not a tensor')
        out[k] = v
    return out


def resnet50_shapes(num_classes=1000):
    """torchvision ResNet-50 state-dict keys (inference: no num_batches_tracked)."""
    shapes = collections.OrderedDict()

    def conv_bn(conv, bn, o, i, k):
        shapes[f'{conv}.weight'] = (o, i, k, k)
        for f in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{bn}.{f}'] = (o,)

    conv_bn('conv1', 'bn1', 64, 3, 7)
    cin = 64
    for s, (n, w) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for i in range(n):
            p = f'layer{s + 1}.{i}'
            conv_bn(f'{p}.conv1', f'{p}.bn1', w, cin, 1)
            conv_bn(f'{p}.conv2', f'{p}.bn2', w, w, 3)
            conv_bn(f'{p}.conv3', f'{p}.bn3', 4 * w, w, 1)
            if i == 0:
                conv_bn(f'{p}.downsample.0', f'{p}.downsample.1', 4 * w, cin, 1)
            cin = 4 * w
    shapes['fc.weight'] = (num_classes, cin)
    shapes['fc.bias'] = (num_classes,)
    return shapes


def convert(path, arch='resnet-50'):
    """-> ({key: float32 tensor}, info)."""
    if arch != 'resnet-50':
        raise ConvertError(f'architecture {arch} is not supported (resnet-50)')
    sd = load_state_dict(path)
    sd = collections.OrderedDict((k, v) for k, v in sd.items()
                                 if not k.endswith('.num_batches_tracked'))
    fc = sd.get('fc.weight')
    want = resnet50_shapes(fc.shape[0] if fc is not None and fc.ndim == 2 else 1000)
    missing = [k for k in want if k not in sd]
    if missing:
        raise ConvertError(f'{path}: not a torchvision ResNet-50: missing tensor '
                           + ', '.join(missing[:8]) + (' ...' if len(missing) > 8 else ''))
    extra = [k for k in sd if k not in want]
    if extra:
        raise ConvertError(f'{path}: tensors a ResNet-50 does not have: ' + ', '.join(extra[:8]))
    for k, shape in want.items():
        if tuple(sd[k].shape) != shape:
            raise ConvertError(f'{path}: tensor {k} has shape {list(sd[k].shape)}, '
                               f'ResNet-50 needs {list(shape)}')
        if not sd[k].is_floating_point():
            raise ConvertError(f'{path}: tensor {k} is {sd[k].dtype}, not floating point')
    base = os.path.basename(path)
    info = {'file': base, 'sha256': _sha256(path)}
    if base.startswith('resnet50-') and base.endswith('.pth'):
        info['url'] = f'{URL_ROOT}/{base}'
    return collections.OrderedDict((k, sd[k].float().contiguous()) for k in want), info


def _sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    from safetensors.torch import save_file
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('pth')
    ap.add_argument('out')
    ap.add_argument('--fp16', action='store_true')
    a = ap.parse_args(argv)
    try:
        tensors, _ = convert(a.pth)
    except (RefusedPickle, ConvertError, OSError) as e:
        print(f'torchvision_to_safetensors: {e}', file=sys.stderr)
        return 2
    except Exception as e:  # backstop: one line, never a traceback
        print(f'torchvision_to_safetensors: {a.pth}: unexpected error: {describe(e)}',
              file=sys.stderr)
        return 1
    if a.fp16:
        tensors = {k: v.to(torch.float16) for k, v in tensors.items()}
    save_file(tensors, a.out)
    print(f'{len(tensors)} tensors -> {a.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
