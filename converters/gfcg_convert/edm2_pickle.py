"""Convert NVIDIA EDM2 snapshot pickles into gfcg model packs, without running them.

NVlabs/edm2 saves networks with `pickle.dump` of a dict such as
`{'ema': <Precond>, 'loss_fn': ..., 'dataset_kwargs': ...}`. Its modules are
"persistent" classes (torch_utils/persistence.py): each one pickles as a call
`torch_utils.persistence._reconstruct_persistent_obj(meta)` where `meta` holds
the *source code* of the defining module (`module_src`), the class name and the
object's `__dict__` (`state`). Loading such a file with `pickle.load` executes
that source. This converter never does:

* `RestrictedUnpickler` resolves only an explicit allowlist of globals
  (`ALLOWED`); every other global (`builtins.exec`, `os.system`,
  `subprocess.Popen`, `torch.load`, ...) raises `RefusedPickle` before anything
  is called. `_reconstruct_persistent_obj` is replaced by a stand-in that keeps
  `meta` as plain data and never looks at `module_src`; plain torch modules
  (`ModuleDict`, ...) and a few inert data types become stand-ins too.
* Tensor storages (`torch.storage._load_from_bytes`) are read with
  `torch.load(weights_only=True)`; persistent ids, out-of-band buffers and
  BUILD onto anything but our stand-ins are refused.

The reconstructed state is then walked like a state_dict (`_parameters`,
`_buffers`, `_modules`), the network config comes from the recorded
`init_kwargs`, every tensor is checked against nets/edm2.py (the network
definition the PyTorch reference of tests/ uses too) built with that config (on the meta device), and the pack is written as
docs/pack-format.md describes.

Latent networks get their image decoders (--vae, --taesd) and encoders
(--encoder, --taesd-encoder) from safetensors files, which hold no code: see
sd_decoders.py.
"""
import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import re
import struct
import sys

# The folder holding converters/ and data/: the repository, or libexec/gfcg
# in an installed copy (manager/meson.build installs the same layout).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NVIDIA_ROOT = 'https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions'
LICENCE = 'CC-BY-NC-SA-4.0'
LICENCE_NOTE = ('NVIDIA EDM2 weights (Karras et al. 2024), CC BY-NC-SA 4.0 '
                '(https://creativecommons.org/licenses/by-nc-sa/4.0/): non-commercial use only. '
                'Converted locally by converters/convert-edm2 from a file the user downloaded; '
                'gfcg never redistributes these weights.')


class RefusedPickle(Exception):
    """The pickle asks for something the converter will not do."""


class ConvertError(Exception):
    """The pickle is safe but not an EDM2 network we can convert."""


class BadPickle(Exception):
    """The file is not a well-formed pickle: empty, truncated, damaged or not a pickle at all."""


def describe(e):
    """An exception in words, also for the ones whose str() is empty (EOFError(), MemoryError())."""
    if isinstance(e, EOFError):
        return 'unexpected end of data'
    if isinstance(e, MemoryError):
        return 'a length too large for memory'
    if isinstance(e, RecursionError):
        return 'nested too deeply'
    text = str(e).strip()
    return f'{type(e).__name__}: {text}' if text else type(e).__name__


# ---------------------------------------------------------------- stand-ins

class StandIn:
    """Inert placeholder for an object the pickle builds (never its real class)."""
    pickled_name = '?'

    def __new__(cls, *args, **kwargs):
        o = object.__new__(cls)
        o.__dict__['args'] = args
        o.__dict__['state'] = None
        return o

    def __setstate__(self, state):
        self.__dict__['state'] = state

    def __repr__(self):
        return f'<stand-in for {self.pickled_name}>'


def _standin_class(qualname):
    return type('StandIn_' + qualname.replace('.', '_'), (StandIn,), {'pickled_name': qualname})


class PersistentObject:
    """What `_reconstruct_persistent_obj(meta)` gives here: the metadata as data."""

    def __init__(self, meta):
        if not isinstance(meta, dict):
            raise RefusedPickle('persistent object metadata is not a dict')
        if meta.get('type') != 'class' or not isinstance(meta.get('class_name'), str):
            raise RefusedPickle(f'unsupported persistent object type {meta.get("type")!r}')
        src = meta.get('module_src')
        self.class_name = meta['class_name']
        self.version = meta.get('version')
        # The source text is kept only as a fingerprint; it is never compiled or run.
        self.module_src_sha256 = hashlib.sha256(src.encode('utf-8', 'replace')).hexdigest() \
            if isinstance(src, str) else None
        self.state = meta.get('state')

    def __repr__(self):
        return f'<persistent {self.class_name}>'


class EasyDictStandIn(dict):
    """dnnlib.util.EasyDict, as a plain dict."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


def _reconstruct_persistent_obj(meta):
    return PersistentObject(meta)


def _load_from_bytes(b):
    import torch
    if not isinstance(b, (bytes, bytearray)):
        raise RefusedPickle('storage payload is not bytes')
    try:
        s = torch.load(io.BytesIO(bytes(b)), weights_only=True, map_location='cpu')
    except Exception as e:  # the weights-only loader refuses anything but storages/tensors
        # torch's own text advises retrying with the unsafe loader: never pass it on.
        m = re.search(r'GLOBAL ([\w.]+)', str(e))
        what = f'asks for the global {m.group(1)}' if m else 'is not a plain tensor storage'
        raise RefusedPickle(f'refused: a nested tensor storage pickle {what} '
                            '(only plain storages are read; nothing was executed)') from None
    if not isinstance(s, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise RefusedPickle(f'storage payload holds a {type(s).__name__}, not a storage')
    return s


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    import torch
    if not isinstance(storage, torch.storage.TypedStorage):
        raise RefusedPickle('tensor rebuilt from something that is not a storage')
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)):
        raise RefusedPickle('malformed tensor geometry')
    if not all(isinstance(v, int) and v >= 0 for v in size + stride) or len(size) != len(stride):
        raise RefusedPickle('malformed tensor geometry')
    need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else 0
    if offset < 0 or need > storage._size():
        # Unpickling cannot know the tensor's name (its dict key): the stand-in
        # is refused, named, by refuse_bad_tensors once the whole file is read.
        return BadTensor(f'exceeds its storage: offset {offset}, size {list(size)}, stride '
                         f'{list(stride)} need {need} elements, the storage holds {storage._size()}')
    t = torch.empty((0,), dtype=storage.dtype)
    t.set_(storage._untyped_storage, offset, size, stride)
    return t


class BadTensor:
    """Inert stand-in for a tensor whose geometry was refused (see _rebuild_tensor_v2)."""

    def __init__(self, problem):
        self.problem = problem

    def __repr__(self):
        return f'<refused tensor: {self.problem}>'


def refuse_bad_tensors(obj, path):
    """Raise RefusedPickle naming the first refused tensor in `obj` by its
    state_dict-style key (module containers such as _modules left out)."""
    skip = ('state', '_modules', '_parameters', '_buffers')
    seen, todo = set(), [(obj, '')]
    while todo:  # iterative: a hostile pickle may nest deeper than the recursion limit
        o, name = todo.pop()
        if isinstance(o, BadTensor):
            raise RefusedPickle(f'{path}: refused: tensor {name or "<root>"} {o.problem}')
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, dict):
            items = [(k, v) for k, v in o.items()]
        elif isinstance(o, (list, tuple)):
            items = list(enumerate(o))
        elif isinstance(o, PersistentObject):
            items = [('state', o.state)]
        elif isinstance(o, StandIn):
            items = [('state', o.state), ('args', o.args)]
        else:
            continue
        for k, v in reversed(items):
            k = str(k)
            todo.append((v, name if k in skip else f'{name}.{k}' if name else k))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    import torch
    if isinstance(data, BadTensor):
        return data
    if not isinstance(data, torch.Tensor):
        raise RefusedPickle('parameter rebuilt from something that is not a tensor')
    return data


def _latin1_bytes(text, encoding='latin1', errors='strict'):
    """Protocol-2 pickles write bytes as _codecs.encode(str, 'latin1'): only that."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1') or errors != 'strict':
        raise RefusedPickle('refused: _codecs.encode other than bytes written by protocol 2')
    return text.encode('latin1')


def _numpy_opaque(name):
    cls = _standin_class(name)
    return cls


# (module, name) -> what the unpickler gets instead. Nothing here runs code
# from the pickle; the torch entries are our own wrappers.
ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('__builtin__', 'set'): set,
    ('__builtin__', 'frozenset'): frozenset,
    ('_codecs', 'encode'): _latin1_bytes,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('dnnlib.util', 'EasyDict'): EasyDictStandIn,
    ('dnnlib', 'EasyDict'): EasyDictStandIn,
}
for _n in ('Module', 'ModuleDict', 'ModuleList', 'Sequential', 'ParameterDict', 'ParameterList'):
    _mod = 'torch.nn.modules.module' if _n == 'Module' else 'torch.nn.modules.container'
    ALLOWED[(_mod, _n)] = _standin_class(f'{_mod}.{_n}')
# Inert numpy values that may sit outside 'ema' (e.g. in an encoder): kept as
# placeholders, numpy itself is never called.
for _m in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    ALLOWED[(_m, 'scalar')] = _numpy_opaque(f'{_m}.scalar')
    ALLOWED[(_m, '_reconstruct')] = _numpy_opaque(f'{_m}._reconstruct')
ALLOWED[('numpy', 'dtype')] = _numpy_opaque('numpy.dtype')
ALLOWED[('numpy', 'ndarray')] = _numpy_opaque('numpy.ndarray')


class _UnknownOpcode(Exception):
    pass


class _Opcodes(dict):
    """The dispatch table: an opcode it lacks is named (load), not a bare KeyError."""

    def __missing__(self, code):
        raise _UnknownOpcode(code)


def _refuse_opcode(opcode, why):
    def load(self):
        raise RefusedPickle(f'refused: opcode {opcode}: {why}')
    return load


def _file_size(f):
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


class RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler whose globals come only from ALLOWED.

    The pure-Python implementation lets BUILD be restricted as well: state is
    only applied to our own stand-ins and to dicts, never through a foreign
    __setstate__.  Every read is checked against the file: a length larger than
    what is left is refused before anything is allocated, a short read is a
    truncated file, and every failure comes out as RefusedPickle or BadPickle
    with the byte offset (load)."""

    dispatch = _Opcodes(pickle._Unpickler.dispatch)

    def __init__(self, f, size=None):
        super().__init__(f)
        self._size = _file_size(f) if size is None else size
        try:
            self._consumed = f.tell()  # torch's legacy format holds several pickles in a row
        except (AttributeError, OSError, ValueError):
            self._consumed = 0
        self._raw_read, self._raw_readline = self._file_read, self._file_readline
        self._file_read, self._file_readline = self._read_checked, self._readline_checked

    # -- reading, with offsets

    def offset(self):
        """Where the next byte comes from, in the file (a frame is read ahead whole)."""
        frame = getattr(getattr(self, '_unframer', None), 'current_frame', None)
        if frame is None:
            return self._consumed
        with frame.getbuffer() as b:
            return self._consumed - (b.nbytes - frame.tell())

    def _left(self):
        return None if self._size is None else self._size - self.offset()

    def _truncated(self):
        return BadPickle(f'truncated pickle (unexpected end of data at byte {self._consumed})')

    def _read_checked(self, n):
        left = self._left()
        if left is not None and n > left:
            raise self._truncated()
        data = self._raw_read(n)
        self._consumed += len(data)
        if len(data) < n:
            raise self._truncated()
        return data

    def _readline_checked(self):
        data = self._raw_readline()
        self._consumed += len(data)
        if not data.endswith(b'\n'):
            raise self._truncated()
        return data

    def _length(self, fmt, opcode):
        """A length prefix, refused when the rest of the file cannot hold it."""
        at = self.offset() - 1
        (n,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        if n < 0:
            raise BadPickle(f'damaged pickle: {opcode} at byte {at} has a negative length {n}')
        left = self._left()
        if left is not None and n > left:
            raise BadPickle(f'truncated or damaged pickle: {opcode} at byte {at} has length {n}, '
                            f'which exceeds the {left} byte{"" if left == 1 else "s"} left in the file')
        return n

    def load_long4(self):
        self.append(pickle.decode_long(self.read(self._length('<i', 'LONG4'))))
    dispatch[pickle.LONG4[0]] = load_long4

    def load_binstring(self):
        self.append(self._decode_string(self.read(self._length('<i', 'BINSTRING'))))
    dispatch[pickle.BINSTRING[0]] = load_binstring

    def load_binbytes(self):
        self.append(self.read(self._length('<I', 'BINBYTES')))
    dispatch[pickle.BINBYTES[0]] = load_binbytes

    def load_binunicode(self):
        self.append(str(self.read(self._length('<I', 'BINUNICODE')), 'utf-8', 'surrogatepass'))
    dispatch[pickle.BINUNICODE[0]] = load_binunicode

    def load_binunicode8(self):
        self.append(str(self.read(self._length('<Q', 'BINUNICODE8')), 'utf-8', 'surrogatepass'))
    dispatch[pickle.BINUNICODE8[0]] = load_binunicode8

    def load_binbytes8(self):
        self.append(self.read(self._length('<Q', 'BINBYTES8')))
    dispatch[pickle.BINBYTES8[0]] = load_binbytes8

    def load_bytearray8(self):
        self.append(bytearray(self.read(self._length('<Q', 'BYTEARRAY8'))))
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_frame(self):
        self._unframer.load_frame(self._length('<Q', 'FRAME'))
    dispatch[pickle.FRAME[0]] = load_frame

    # copyreg's extension registry names globals by number, and its
    # process-wide cache hands out objects without asking find_class.
    for _op in ('EXT1', 'EXT2', 'EXT4'):
        dispatch[getattr(pickle, _op)[0]] = _refuse_opcode(
            _op, 'the copyreg extension registry is not supported')
    del _op

    def load(self):
        try:
            return super().load()
        except _UnknownOpcode as e:
            raise BadPickle(f'not a valid pickle: unknown opcode 0x{e.args[0]:02x} at byte '
                            f'{self.offset() - 1}') from None
        except (RefusedPickle, BadPickle, ConvertError) as e:
            raise type(e)(f'{e} (at byte {self.offset()})' if 'byte' not in str(e) else str(e)) \
                from None
        except Exception as e:  # struct.error, IndexError, EOFError(), MemoryError, ...
            if self._size is not None and self._consumed >= self._size:
                raise self._truncated() from None  # the data ended before STOP
            raise BadPickle(f'not a valid pickle: {describe(e)} at byte {self.offset()}') from None

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedPickle(
                f'refused: the pickle asks for the global {module}.{name}, which is not on the '
                f'allowlist of parameter/buffer containers (nothing was executed)') from None

    def persistent_load(self, pid):
        raise RefusedPickle('refused: persistent ids (torch.save archives) are not supported; '
                            'give an EDM2 snapshot written with pickle.dump')

    def load_build(self):
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if isinstance(inst, (StandIn, EasyDictStandIn)):
            inst.__setstate__(state)
        elif type(inst) in (dict, collections.OrderedDict) and isinstance(state, dict):
            inst.update(state)  # plain data only
        else:
            raise RefusedPickle(f'refused: BUILD (set state) on a {type(inst).__name__}')
    dispatch[pickle.BUILD[0]] = load_build

    def load_next_buffer(self):
        raise RefusedPickle('refused: out-of-band buffers')
    dispatch[pickle.NEXT_BUFFER[0]] = load_next_buffer


def restricted_load(path):
    """The pickle at `path`, loaded by RestrictedUnpickler; errors name the file."""
    with open(path, 'rb') as f:
        head = f.read(4)
        f.seek(0)
        if not head:
            raise BadPickle(f'{path}: empty file (0 bytes), not a pickle')
        if head.startswith(b'PK'):
            raise RefusedPickle(f'{path}: a zip archive (torch.save), not an EDM2 snapshot pickle')
        try:
            data = RestrictedUnpickler(f).load()
        except (RefusedPickle, BadPickle) as e:
            raise type(e)(f'{path}: {e}') from None
    refuse_bad_tensors(data, path)
    return data


# ---------------------------------------------------------------- walking the state

def module_state(obj, where):
    if isinstance(obj, PersistentObject):
        state = obj.state
    elif isinstance(obj, StandIn):
        state = obj.state
    else:
        raise ConvertError(f'{where}: expected a torch module, found {type(obj).__name__}')
    if not isinstance(state, dict):
        raise ConvertError(f'{where}: module without a state dict')
    return state


def collect_tensors(obj, prefix='', out=None):
    """Parameters and buffers, recursively, with state_dict-style dotted names."""
    import torch
    out = {} if out is None else out
    state = module_state(obj, prefix or '<root>')
    for field in ('_parameters', '_buffers'):
        for name, t in (state.get(field) or {}).items():
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                raise ConvertError(f'{prefix}{name}: not a tensor')
            if field == '_buffers' and name in (state.get('_non_persistent_buffers_set') or ()):
                continue
            out[prefix + name] = t
    for name, sub in (state.get('_modules') or {}).items():
        if sub is not None:
            collect_tensors(sub, f'{prefix}{name}.', out)
    return out


# NVlabs/edm2 UNet/Block defaults (facts about the checkpoint format).
UNET_DEFAULTS = dict(model_channels=192, channel_mult=[1, 2, 3, 4], channel_mult_noise=None,
                     channel_mult_emb=None, num_blocks=3, attn_resolutions=[16, 8],
                     label_balance=0.5, concat_balance=0.5, res_balance=0.3, attn_balance=0.3,
                     channels_per_head=64, clip_act=256)
PRECOND_POSITIONAL = ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data',
                      'logvar_channels')
UNET_POSITIONAL = ('img_resolution', 'img_channels', 'label_dim', 'model_channels', 'channel_mult',
                   'channel_mult_noise', 'channel_mult_emb', 'num_blocks', 'attn_resolutions',
                   'label_balance', 'concat_balance')


def _init_kwargs(obj, positional, what):
    st = obj.state
    kw = st.get('_init_kwargs')
    args = st.get('_init_args') or ()
    if kw is None:
        raise ConvertError(f'{what}: the pickle did not record its constructor arguments')
    if not isinstance(kw, dict) or not isinstance(args, (tuple, list)) or len(args) > len(positional):
        raise ConvertError(f'{what}: malformed constructor arguments')
    out = dict(zip(positional, args))
    out.update(kw)
    return out


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ConvertError(f'unexpected constructor argument value {v!r}')


def edm2_config(net):
    if not isinstance(net, PersistentObject) or net.class_name != 'Precond':
        raise ConvertError(f"'ema' is {net!r}, not an EDM2 Precond network")
    pk = _init_kwargs(net, PRECOND_POSITIONAL, 'Precond')
    unet = (net.state.get('_modules') or {}).get('unet')
    if not isinstance(unet, PersistentObject) or unet.class_name != 'UNet':
        raise ConvertError("the Precond has no EDM2 'unet' submodule")
    uk = _init_kwargs(unet, UNET_POSITIONAL, 'UNet')
    cfg = {}
    for k in ('img_resolution', 'img_channels', 'label_dim'):
        if k not in uk:
            raise ConvertError(f'UNet constructor arguments lack {k}')
        cfg[k] = uk[k]
    for k, d in UNET_DEFAULTS.items():
        cfg[k] = uk.get(k, d)
    cfg['sigma_data'] = pk.get('sigma_data', net.state.get('sigma_data', 0.5))
    if list(uk.get('resample_filter', [1, 1])) != [1, 1]:
        raise ConvertError(f'resample_filter {uk["resample_filter"]} is not supported (only [1, 1])')
    cfg = {k: _plain(v) for k, v in cfg.items()}
    for k in ('img_resolution', 'img_channels', 'label_dim', 'model_channels', 'num_blocks'):
        if not isinstance(cfg[k], int) or isinstance(cfg[k], bool) or cfg[k] < 0:
            raise ConvertError(f'{k} = {cfg[k]!r} is not a non-negative integer')
    return cfg, {'use_fp16': _plain(pk.get('use_fp16')), 'logvar_channels': _plain(pk.get('logvar_channels')),
                 'dropout': _plain(uk.get('dropout', 0))}


def expected_shapes(cfg):
    """Pack tensor names and shapes for `cfg`, from the reference module (meta device)."""
    import torch
    from .nets.edm2 import EDM2Precond
    with torch.device('meta'):
        net = EDM2Precond(**cfg)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def convert_net(path, role):
    """-> (config, {pack tensor name: tensor}, info); every error names `path`."""
    try:
        return _convert_net(path, role)
    except (RefusedPickle, ConvertError, BadPickle) as e:
        if str(e).startswith(f'{path}:') or str(e).startswith(f'{path} ('):
            raise
        raise type(e)(f'{path}: {e}') from None
    except OSError as e:
        raise BadPickle(f'{path}: {e.strerror or describe(e)}') from None


def _convert_net(path, role):
    data = restricted_load(path)
    if not isinstance(data, dict) or 'ema' not in data:
        raise ConvertError(f"{path}: not an EDM2 snapshot (no 'ema' entry)")
    net = data['ema']
    cfg, extra = edm2_config(net)
    tensors = collect_tensors(net)
    out, dropped = {}, []
    for name, t in tensors.items():
        if name.startswith('unet.'):
            out[name[5:]] = t
        elif name.startswith('logvar_'):
            dropped.append(name)
        else:
            raise ConvertError(f'{path}: unexpected tensor {name} outside the UNet')
    want = expected_shapes(cfg)
    missing = [k for k in want if k not in out]
    if missing:
        raise ConvertError(f'{path} ({role}): missing tensors for the recorded config: '
                           + ', '.join(missing[:8]) + (' ...' if len(missing) > 8 else ''))
    unknown = [k for k in out if k not in want]
    if unknown:
        raise ConvertError(f'{path} ({role}): tensors the recorded config does not use: '
                           + ', '.join(unknown[:8]))
    for k, shape in want.items():
        if tuple(out[k].shape) != shape:
            raise ConvertError(f'{path} ({role}): {k} has shape {list(out[k].shape)}, '
                               f'the config needs {list(shape)}')
        if not out[k].is_floating_point():
            raise ConvertError(f'{path} ({role}): {k} is {out[k].dtype}, not floating point')
    info = {'file': os.path.basename(path), 'sha256': sha256_file(path),
            'precond': extra, 'dropped': sorted(dropped)}
    info.update(parse_nvidia_name(os.path.basename(path)))
    return cfg, {k: out[k] for k in want}, info


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


NAME_RE = re.compile(r'^edm2-(img\d+)-([a-z]+)(-uncond)?-(\d+)-(\d+\.\d+)\.pkl$')


def parse_nvidia_name(base):
    """NVIDIA's published names: edm2-img512-xs-uncond-2147483-0.045.pkl."""
    m = NAME_RE.match(base)
    if not m:
        return {}
    return {'dataset': m.group(1), 'size': m.group(2), 'conditional': m.group(3) is None,
            'training_kimg': int(m.group(4)), 'ema_std': float(m.group(5)),
            'url': f'{NVIDIA_ROOT}/{base}'}


# ---------------------------------------------------------------- the pack

def load_imagenet_names():
    path = os.path.join(REPO, 'data', 'imagenet-classes.tsv')
    names = {}
    if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.startswith('#') or not line.strip():
                    continue
                cols = line.rstrip('\n').split('\t')
                if len(cols) >= 3 and cols[0].isdigit():
                    names[int(cols[0])] = (cols[1], cols[2])
    return names


def classes_for(label_dim):
    if label_dim > 1000:
        raise ConvertError(f'label_dim {label_dim} > 1000: no ImageNet-1k mapping')
    names = load_imagenet_names()
    return [{'imagenet': k, 'wnid': names.get(k, ('', ''))[0], 'name': names.get(k, ('', ''))[1]}
            for k in range(label_dim)]


def _save(path, role, tensors, fp16):
    import torch
    from safetensors.torch import save_file
    dtype = torch.float16 if fp16 else torch.float32
    ts = {}
    for k, t in tensors.items():
        v = t.detach().to(torch.float32)
        if fp16 and v.abs().max().item() > 65504:
            raise ConvertError(f'{role}: {k} does not fit in fp16; convert without --fp16')
        ts[k] = v.to(dtype).contiguous()
    save_file(ts, path)


def convert_decoders(vae, vae_config, taesd):
    """-> {component: (arch, config, tensors, source)}: --vae is the decoder and
    --taesd the preview; --taesd alone is the decoder."""
    from . import sd_decoders
    comps = {}
    try:
        if vae:
            cfg, t, info = sd_decoders.convert_vae(vae, vae_config)
            comps['decoder'] = ('sd-vae-decoder', cfg, t, info)
        if taesd:
            cfg, t, info = sd_decoders.convert_taesd(taesd)
            comps['preview' if vae else 'decoder'] = ('taesd-decoder', cfg, t, info)
    except sd_decoders.DecoderError as e:
        raise ConvertError(str(e)) from None
    return comps


def convert_encoders(vae, vae_config, encoder, taesd_encoder):
    """-> {component: (arch, config, tensors, source)}: with --encoder the --vae
    file's encoder is the encoder and --taesd-encoder the preview-encoder;
    --taesd-encoder alone is the encoder."""
    from . import sd_decoders
    comps = {}
    if encoder and not vae:
        raise ConvertError('--encoder takes the encoder of the --vae file; give --vae too')
    try:
        if encoder:
            cfg, t, info = sd_decoders.convert_vae_encoder(vae, vae_config)
            comps['encoder'] = ('sd-vae-encoder', cfg, t, info)
        if taesd_encoder:
            cfg, t, info = sd_decoders.convert_taesd_encoder(taesd_encoder)
            comps['preview-encoder' if encoder else 'encoder'] = ('taesd-encoder', cfg, t, info)
    except sd_decoders.DecoderError as e:
        raise ConvertError(str(e)) from None
    return comps


def convert(main, out, guide=None, uncond=None, fp16=False, name=None, title=None,
            guidance=None, source_url=None, mode=None, vae=None, vae_config=None, taesd=None,
            guidance_cfg=None, guidance_atg=None, encoder=False, taesd_encoder=None, log=print):
    nets = {'main': main}
    if guide:
        nets['guide'] = guide
    if uncond:
        nets['uncond'] = uncond
    converted = {role: convert_net(p, role) for role, p in nets.items()}
    mcfg = converted['main'][0]
    if mcfg['label_dim'] == 0:
        # A pack's classes come from the main network: without labels the engine has none.
        raise ConvertError(f'{main}: an unconditional network (label_dim 0) cannot be the main '
                           'network; pass it as --uncond next to a class-conditional --main')
    for role, (cfg, _, _) in converted.items():
        if (cfg['img_resolution'], cfg['img_channels']) != (mcfg['img_resolution'], mcfg['img_channels']):
            raise ConvertError(f'{role} works on {cfg["img_channels"]}x{cfg["img_resolution"]}^2, '
                               f'main on {mcfg["img_channels"]}x{mcfg["img_resolution"]}^2')
    if guide and converted['guide'][0]['label_dim'] != mcfg['label_dim']:
        raise ConvertError('guide and main have different label_dim (autoguidance needs the same labels)')
    if uncond and converted['uncond'][0]['label_dim'] != 0:
        log(f'note: --uncond network has label_dim {converted["uncond"][0]["label_dim"]}; '
            'the engine runs it label-less')
    if mcfg['img_channels'] == 3:
        kind, resolution = 'pixel', mcfg['img_resolution']
    elif mcfg['img_channels'] == 4:
        kind, resolution = 'latent', mcfg['img_resolution'] * 8
    else:
        raise ConvertError(f'img_channels {mcfg["img_channels"]}: neither pixel (3) nor SD latent (4)')
    if (vae or taesd or encoder or taesd_encoder) and kind != 'latent':
        raise ConvertError('--vae/--taesd/--encoder/--taesd-encoder belong to latent (4-channel) '
                           'networks; this one is pixel')
    decoders = convert_decoders(vae, vae_config, taesd)
    encoders = convert_encoders(vae, vae_config, encoder, taesd_encoder)
    for role, (arch, cfg, _, info) in {**decoders, **encoders}.items():
        if cfg['latent_channels'] != mcfg['img_channels']:
            verb = 'decodes' if role in decoders else 'encodes to'
            raise ConvertError(f'{info["file"]}: {verb} {cfg["latent_channels"]} latent channels, '
                               f'the networks make {mcfg["img_channels"]}')
    os.makedirs(out, exist_ok=True)
    comps, sources = {}, {}
    for role, (cfg, tensors, info) in converted.items():
        _save(os.path.join(out, f'{role}.safetensors'), role, tensors, fp16)
        comps[role] = {'file': f'{role}.safetensors', 'arch': 'edm2-unet', 'config': cfg,
                       'source': info}
        sources[role] = info.get('url') or info['file']
    for role, (arch, cfg, tensors, info) in {**decoders, **encoders}.items():
        _save(os.path.join(out, f'{role}.safetensors'), role, tensors, fp16)
        comps[role] = {'file': f'{role}.safetensors', 'arch': arch, 'config': cfg, 'source': info}
        sources[role] = info['url'] + ' (' + info['file'] + ')'
    base = name or re.sub(r'\.pkl$', '', os.path.basename(main))
    defaults = {'mode': mode or ('atg' if guide else 'cfg' if uncond else 'none')}
    for key, w in (('guidance', guidance), ('guidance_cfg', guidance_cfg),
                   ('guidance_atg', guidance_atg)):
        if w is not None:
            defaults[key] = w
    manifest = {
        'format': 'gfcg-pack', 'format_version': 1, 'name': base,
        'title': title or f'EDM2 {base} (converted)',
        'licence': LICENCE, 'licence_note': LICENCE_NOTE,
        'source': source_url or sources['main'],
        'sources': sources,
        'converter': 'converters/convert-edm2',
        'kind': kind, 'resolution': resolution, 'channels': mcfg['img_channels'],
        'classes': classes_for(mcfg['label_dim']),
        'components': comps, 'defaults': defaults,
    }
    if mcfg['label_dim'] not in (0, 1000):
        manifest['classes_note'] = ('label_dim is not 1000: pack class k is assumed to be '
                                    'ImageNet-1k index k')
    if kind == 'latent' and (decoders or encoders):
        from . import sd_decoders
        manifest['latent'] = dict(sd_decoders.EDM2_LATENT)
        for what, comps_ in (('Decoders', decoders), ('Encoders', encoders)):
            if comps_:
                manifest['licence_note'] += f' {what}: ' + '; '.join(
                    f'{role} {info["name"]}, {info["licence"]}'
                    for role, (_, _, _, info) in comps_.items()) + '.'
    if kind == 'latent' and not decoders:
        manifest['note'] = ('latent pack (Stable Diffusion sd-vae-ft-mse latents): it needs a '
                            '"decoder" component before it can draw pictures (--vae, --taesd)')
    with open(os.path.join(out, 'pack.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
        f.write('\n')
    log(f'wrote {out}: {kind} {resolution}px, components {", ".join(comps)}, '
        f'{"F16" if fp16 else "F32"}')
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog='convert-edm2',
        description='Convert NVIDIA EDM2 snapshot pickles into a gfcg model pack without executing '
                    'the code they embed (restricted unpickler: parameters and buffers only).')
    ap.add_argument('--main', required=True, help='main network pickle (edm2-img*-*.pkl)')
    ap.add_argument('--guide', help='autoguidance guide network pickle')
    ap.add_argument('--uncond', help='unconditional network pickle (CFG reference)')
    ap.add_argument('--out', required=True, help='pack directory to write')
    ap.add_argument('--fp16', action='store_true', help='store F16 tensors (default F32)')
    ap.add_argument('--name', help='pack name (default: the main pickle name)')
    ap.add_argument('--title', help='pack title')
    ap.add_argument('--guidance', type=float, help='default CFG/ATG weight w for pack.json')
    ap.add_argument('--guidance-cfg', type=float,
                    help='default weight of the CFG modes, when it differs from --guidance')
    ap.add_argument('--guidance-atg', type=float,
                    help='default weight of the autoguidance modes, when it differs')
    ap.add_argument('--mode', help='default guidance mode (default: atg with --guide, cfg with '
                                   '--uncond, else none)')
    ap.add_argument('--source-url', help='where the main pickle came from (default: NVIDIA\'s URL '
                                         'for its published file names)')
    ap.add_argument('--vae', help='latent packs: the SD VAE (stabilityai/sd-vae-ft-mse '
                                  'diffusion_pytorch_model.safetensors); its decoder becomes the '
                                  'pack\'s decoder')
    ap.add_argument('--vae-config', help='the VAE\'s diffusers config.json (only needed when its '
                                         'norm_num_groups is not 32)')
    ap.add_argument('--taesd', help='latent packs: TAESD\'s taesd_decoder.safetensors, the quick '
                                    'preview decoder (the decoder itself without --vae)')
    ap.add_argument('--encoder', action='store_true',
                    help='latent packs: also write the --vae file\'s encoder as the pack\'s '
                         'encoder (pictures to latents: refining a layer, filling a selection)')
    ap.add_argument('--taesd-encoder', help='latent packs: TAESD\'s taesd_encoder.safetensors, the '
                                            'quick preview-encoder (the encoder itself without '
                                            '--encoder)')
    a = ap.parse_args(argv)
    try:
        convert(a.main, a.out, guide=a.guide, uncond=a.uncond, fp16=a.fp16, name=a.name,
                title=a.title, guidance=a.guidance, source_url=a.source_url, mode=a.mode,
                vae=a.vae, vae_config=a.vae_config, taesd=a.taesd,
                guidance_cfg=a.guidance_cfg, guidance_atg=a.guidance_atg,
                encoder=a.encoder, taesd_encoder=a.taesd_encoder)
    except (RefusedPickle, ConvertError) as e:
        print(f'convert-edm2: {e}', file=sys.stderr)
        return 2
    except BadPickle as e:
        print(f'convert-edm2: {e}', file=sys.stderr)
        return 1
    except OSError as e:
        where = f'{e.filename}: ' if e.filename else ''
        print(f'convert-edm2: {where}{e.strerror or describe(e)}', file=sys.stderr)
        return 1
    except Exception as e:  # backstop: one line, never a traceback
        print(f'convert-edm2: unexpected error: {describe(e)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
