/* cv-tflite.c — a TFLite classifier (the Coral MobileNetV2) read natively, as
 * converters/gfcg_convert/tflite_to_safetensors.py reads it.
 *
 * A small flatbuffer reader, every offset, vtable and vector checked against
 * the file before it is followed; the fields of TFLite's schema.fbs the
 * Python converter uses (by slot number): Model.operator_codes, subgraphs,
 * buffers; SubGraph.tensors, inputs, outputs, operators; Tensor.shape, type,
 * buffer, name, quantization (scale, zero_point, quantized_dimension);
 * Operator.opcode_index, inputs, outputs, builtin_options.
 *
 * Every constant tensor is dequantised as the Python converter does it, in
 * double precision (scale * (q - zero_point), per tensor or per channel) and
 * then rounded to float32; conv weights move to PyTorch's layout (CONV_2D
 * OHWI -> OIHW, DEPTHWISE_CONV_2D 1HWC -> C1HW); a MobileNetV2 graph gets the
 * engine's names.  The graph itself goes into the file's __metadata__ as the
 * JSON text Python's json.dumps writes, so the files come out byte for byte
 * the same. */
#include "cv-tflite.h"

#include <math.h>
#include <string.h>

typedef struct
{
  const guint8 *b;
  gsize         len;
} Fb;

typedef struct
{
  const Fb *fb;
  gsize     pos, vt;
  guint32   vtlen;
} Tab;

static gboolean
fb_get (const Fb *fb, gsize pos, gsize width, guint64 *out)
{
  guint64 v = 0;

  if (pos > fb->len || width > fb->len - pos)
    return FALSE;
  for (gsize i = width; i-- > 0;)
    v = (v << 8) | fb->b[pos + i];
  *out = v;
  return TRUE;
}

static gboolean
tab_at (const Fb *fb, gsize pos, Tab *t)
{
  guint64 so, vl;
  gint64  vt;

  if (!fb_get (fb, pos, 4, &so))
    return FALSE;
  vt = (gint64) pos - (gint64) (gint32) (guint32) so;
  if (vt < 0 || !fb_get (fb, (gsize) vt, 2, &vl))
    return FALSE;
  t->fb = fb;
  t->pos = pos;
  t->vt = (gsize) vt;
  t->vtlen = (guint32) vl;
  return TRUE;
}

/* The field's position, or 0 when absent. */
static gsize
field (const Tab *t, int slot, gboolean *bad)
{
  guint64 o;
  gsize   at = 4 + 2 * (gsize) slot;

  if (at >= t->vtlen)
    return 0;
  if (!fb_get (t->fb, t->vt + at, 2, &o))
    {
      *bad = TRUE;
      return 0;
    }
  return o ? t->pos + (gsize) o : 0;
}

static gint64
scalar (const Tab *t, int slot, int width, gboolean is_signed, gint64 def, gboolean *bad)
{
  gsize   f = field (t, slot, bad);
  guint64 v;

  if (f == 0)
    return def;
  if (!fb_get (t->fb, f, width, &v))
    {
      *bad = TRUE;
      return def;
    }
  if (is_signed)
    {
      if (width == 1)
        return (gint8) v;
      if (width == 2)
        return (gint16) v;
      if (width == 4)
        return (gint32) (guint32) v;
    }
  return (gint64) v;
}

static float
scalar_f32 (const Tab *t, int slot, float def, gboolean *bad)
{
  gsize   f = field (t, slot, bad);
  guint64 v;
  guint32 u;
  float   x;

  if (f == 0)
    return def;
  if (!fb_get (t->fb, f, 4, &v))
    {
      *bad = TRUE;
      return def;
    }
  u = (guint32) v;
  memcpy (&x, &u, 4);
  return x;
}

/* The object an offset field points at. */
static gsize
indirect (const Tab *t, int slot, gboolean *bad)
{
  gsize   f = field (t, slot, bad);
  guint64 o;

  if (f == 0)
    return 0;
  if (!fb_get (t->fb, f, 4, &o) || f + o > t->fb->len)
    {
      *bad = TRUE;
      return 0;
    }
  return f + (gsize) o;
}

static gboolean
sub_table (const Tab *t, int slot, Tab *out, gboolean *bad)
{
  gsize p = indirect (t, slot, bad);

  if (p == 0)
    return FALSE;
  if (!tab_at (t->fb, p, out))
    {
      *bad = TRUE;
      return FALSE;
    }
  return TRUE;
}

/* A vector field: its element count and where its elements start. */
static gboolean
vector (const Tab *t, int slot, gsize elem, gsize *start, gsize *n, gboolean *bad)
{
  gsize   p = indirect (t, slot, bad);
  guint64 len;

  *n = 0;
  *start = 0;
  if (p == 0)
    return FALSE;
  if (!fb_get (t->fb, p, 4, &len) || (len > 0 && (t->fb->len - p - 4) / elem < len))
    {
      *bad = TRUE;
      return FALSE;
    }
  *start = p + 4;
  *n = (gsize) len;
  return TRUE;
}

static char *
string (const Tab *t, int slot, gboolean *bad)
{
  gsize start, n;

  if (!vector (t, slot, 1, &start, &n, bad))
    return g_strdup ("");
  return g_strndup ((const char *) t->fb->b + start, n);
}

static GArray *
int_vector (const Tab *t, int slot, int width, gboolean *bad)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (gint64));
  gsize   start, n;

  if (vector (t, slot, width, &start, &n, bad))
    for (gsize i = 0; i < n; i++)
      {
        guint64 v = 0;
        gint64  x;
        fb_get (t->fb, start + i * width, width, &v);
        x = width == 4 ? (gint64) (gint32) (guint32) v : (gint64) v;
        g_array_append_val (a, x);
      }
  return a;
}

/* The tables of a vector of tables. */
static GArray *
tables (const Tab *t, int slot, gboolean *bad)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (Tab));
  gsize   start, n;

  if (vector (t, slot, 4, &start, &n, bad))
    for (gsize i = 0; i < n; i++)
      {
        guint64 o = 0;
        Tab     e;
        gsize   at = start + 4 * i;
        fb_get (t->fb, at, 4, &o);
        if (at + o > t->fb->len || !tab_at (t->fb, at + (gsize) o, &e))
          {
            *bad = TRUE;
            break;
          }
        g_array_append_val (a, e);
      }
  return a;
}

/* ---- Python's json.dumps ------------------------------------------------------------------ */

static void
js_str (GString *s, const char *str)
{
  const guchar *p = (const guchar *) str;

  g_string_append_c (s, '"');
  while (*p)
    {
      gunichar c;
      const guchar *next;
      switch (*p)
        {
        case '"': g_string_append (s, "\\\""); p++; continue;
        case '\\': g_string_append (s, "\\\\"); p++; continue;
        case '\n': g_string_append (s, "\\n"); p++; continue;
        case '\r': g_string_append (s, "\\r"); p++; continue;
        case '\t': g_string_append (s, "\\t"); p++; continue;
        case '\b': g_string_append (s, "\\b"); p++; continue;
        case '\f': g_string_append (s, "\\f"); p++; continue;
        default: break;
        }
      if (*p < 0x20)
        {
          g_string_append_printf (s, "\\u%04x", *p++);
          continue;
        }
      if (*p < 0x80)
        {
          g_string_append_c (s, (char) *p++);
          continue;
        }
      c = g_utf8_get_char_validated ((const char *) p, -1);
      if (c == (gunichar) -1 || c == (gunichar) -2)
        {
          g_string_append_printf (s, "\\u%04x", 0xfffd);
          p++;
          continue;
        }
      next = (const guchar *) g_utf8_next_char (p);
      if (c >= 0x10000)
        {
          c -= 0x10000;
          g_string_append_printf (s, "\\u%04x\\u%04x", 0xd800 | (c >> 10), 0xdc00 | (c & 0x3ff));
        }
      else
        g_string_append_printf (s, "\\u%04x", c);
      p = (const guchar *) next;
    }
  g_string_append_c (s, '"');
}

static void
js_float (GString *s, double v)
{
  if (isnan (v))
    g_string_append (s, "NaN");
  else if (isinf (v))
    g_string_append (s, v < 0 ? "-Infinity" : "Infinity");
  else
    cv_py_float_repr (s, v);
}

static void
js_ints (GString *s, const GArray *a)
{
  g_string_append_c (s, '[');
  for (guint i = 0; i < a->len; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", g_array_index (a, gint64, i));
  g_string_append_c (s, ']');
}

/* ---- the model ------------------------------------------------------------------------------ */

static const struct { int code; const char *name; } ops_known[] = {
  { 0, "ADD" }, { 1, "AVERAGE_POOL_2D" }, { 2, "CONCATENATION" }, { 3, "CONV_2D" },
  { 4, "DEPTHWISE_CONV_2D" }, { 6, "DEQUANTIZE" }, { 9, "FULLY_CONNECTED" }, { 14, "LOGISTIC" },
  { 17, "MAX_POOL_2D" }, { 18, "MUL" }, { 19, "RELU" }, { 21, "RELU6" }, { 22, "RESHAPE" },
  { 25, "SOFTMAX" }, { 40, "MEAN" }, { 114, "QUANTIZE" },
};

typedef struct
{
  char    *name;
  GArray  *shape;     /* gint64 */
  int      type;
  gint64   buffer;
  GArray  *scale;     /* float */
  GArray  *zp;        /* gint64 */
  gint64   qdim;
  char    *stored;    /* its name in the file, when it is a constant */
} TTensor;

typedef struct
{
  const char *op;
  GArray     *inputs, *outputs;
  GString    *options; /* as JSON */
} TOp;

static const char *
dtype_name (int type)
{
  switch (type)
    {
    case 0: return "float32";
    case 1: return "float16";
    case 2: return "int32";
    case 3: return "uint8";
    case 4: return "int64";
    case 9: return "int8";
    case 7: return "int16";
    default: return NULL;
    }
}

static gsize
dtype_bytes (int type)
{
  return type == 0 || type == 2 ? 4 : type == 1 || type == 7 ? 2 : type == 4 ? 8 : 1;
}

static double
element (int type, const guint8 *p)
{
  switch (type)
    {
    case 0: { float v; memcpy (&v, p, 4); return v; }
    case 1: return cv_f16_to_f32 ((guint16) (p[0] | p[1] << 8));
    case 2: { gint32 v; memcpy (&v, p, 4); return v; }
    case 3: return p[0];
    case 4: { gint64 v; memcpy (&v, p, 8); return (double) v; }
    case 9: return (gint8) p[0];
    case 7: { gint16 v; memcpy (&v, p, 2); return v; }
    default: return 0;
    }
}

static const char *
act_name (gint64 a, gboolean *ok)
{
  switch (a)
    {
    case 0: return NULL;
    case 1: return "relu";
    case 2: return "relu_n1_to_1";
    case 3: return "relu6";
    default: *ok = FALSE; return NULL;
    }
}

static void
js_act (GString *s, const char *key, const char *act)
{
  g_string_append_printf (s, "\"%s\": ", key);
  if (act == NULL)
    g_string_append (s, "null");
  else
    js_str (s, act);
}

/* The builtin options the runner needs, as Python's options() gives them. */
static gboolean
options_json (const char *op, const Tab *opt, gboolean has, GString *s, gint64 *bad_act, gboolean *bad)
{
  gboolean ok = TRUE;
  const char *act;

  g_string_append_c (s, '{');
  if (!has)
    {
      g_string_append_c (s, '}');
      return TRUE;
    }
#define I8(slot) scalar (opt, slot, 1, TRUE, 0, bad)
#define I32(slot, d) scalar (opt, slot, 4, TRUE, d, bad)
  if (strcmp (op, "CONV_2D") == 0)
    {
      gint64 a = I8 (3);
      g_string_append_printf (s, "\"padding\": %" G_GINT64_FORMAT ", \"stride_w\": %" G_GINT64_FORMAT
                              ", \"stride_h\": %" G_GINT64_FORMAT ", ", I8 (0), I32 (1, 0), I32 (2, 0));
      act = act_name (a, &ok);
      if (!ok)
        return (*bad_act = a), FALSE;
      js_act (s, "act", act);
      g_string_append_printf (s, ", \"dilation_w\": %" G_GINT64_FORMAT ", \"dilation_h\": %"
                              G_GINT64_FORMAT, I32 (4, 1), I32 (5, 1));
    }
  else if (strcmp (op, "DEPTHWISE_CONV_2D") == 0)
    {
      gint64 a = I8 (4);
      g_string_append_printf (s, "\"padding\": %" G_GINT64_FORMAT ", \"stride_w\": %" G_GINT64_FORMAT
                              ", \"stride_h\": %" G_GINT64_FORMAT ", \"depth_multiplier\": %"
                              G_GINT64_FORMAT ", ", I8 (0), I32 (1, 0), I32 (2, 0), I32 (3, 0));
      act = act_name (a, &ok);
      if (!ok)
        return (*bad_act = a), FALSE;
      js_act (s, "act", act);
      g_string_append_printf (s, ", \"dilation_w\": %" G_GINT64_FORMAT ", \"dilation_h\": %"
                              G_GINT64_FORMAT, I32 (5, 1), I32 (6, 1));
    }
  else if (strcmp (op, "AVERAGE_POOL_2D") == 0 || strcmp (op, "MAX_POOL_2D") == 0)
    {
      gint64 a = I8 (5);
      g_string_append_printf (s, "\"padding\": %" G_GINT64_FORMAT ", \"stride_w\": %" G_GINT64_FORMAT
                              ", \"stride_h\": %" G_GINT64_FORMAT ", \"filter_w\": %" G_GINT64_FORMAT
                              ", \"filter_h\": %" G_GINT64_FORMAT ", ", I8 (0), I32 (1, 0), I32 (2, 0),
                              I32 (3, 0), I32 (4, 0));
      act = act_name (a, &ok);
      if (!ok)
        return (*bad_act = a), FALSE;
      js_act (s, "act", act);
    }
  else if (strcmp (op, "ADD") == 0 || strcmp (op, "MUL") == 0 || strcmp (op, "FULLY_CONNECTED") == 0)
    {
      gint64 a = I8 (0);
      act = act_name (a, &ok);
      if (!ok)
        return (*bad_act = a), FALSE;
      js_act (s, "act", act);
    }
  else if (strcmp (op, "SOFTMAX") == 0)
    {
      g_string_append (s, "\"beta\": ");
      js_float (s, scalar_f32 (opt, 0, 1.0f, bad));
    }
#undef I8
#undef I32
  g_string_append_c (s, '}');
  return TRUE;
}

/* tensors[op.inputs[1]].shape[1:3] (a Python list index: negative from the
 * end); FALSE where Python would raise IndexError. */
static gboolean
kernel_is (GPtrArray *ts, TOp *op, gint64 h, gint64 w, gboolean *is)
{
  gint64   i;
  TTensor *t;

  if (op->inputs->len < 2)
    return FALSE;
  i = g_array_index (op->inputs, gint64, 1);
  if (i < -(gint64) ts->len || i >= (gint64) ts->len)
    return FALSE;
  t = ts->pdata[i < 0 ? i + (gint64) ts->len : i];
  *is = t->shape->len >= 3 && g_array_index (t->shape, gint64, 1) == h &&
        g_array_index (t->shape, gint64, 2) == w;
  return TRUE;
}

/* name(op, role): its weight and bias tensors named (FALSE: Python's KeyError). */
static gboolean
name_op (GPtrArray *ts, TOp *op, const char *role, char **names)
{
  gint64 w, b;

  if (op->inputs->len < 3 || g_array_index (op->inputs, gint64, 2) < 0)
    return FALSE;
  w = g_array_index (op->inputs, gint64, 1);
  b = g_array_index (op->inputs, gint64, 2);
  /* names is a dict by tensor index: an index no tensor has is never looked up */
  if (w >= 0 && w < (gint64) ts->len)
    {
      g_free (names[w]);
      names[w] = g_strdup_printf ("%s.weight", role);
    }
  if (b < (gint64) ts->len)
    {
      g_free (names[b]);
      names[b] = g_strdup_printf ("%s.bias", role);
    }
  return TRUE;
}

static gboolean
op_is (GPtrArray *seq, guint j, const char *name)
{
  return j < seq->len && strcmp (((TOp *) seq->pdata[j])->op, name) == 0;
}

/* mobilenet_v2_names: the engine's names for a MobileNetV2 graph, from the
 * operator sequence alone (stem conv; blocks of [1x1 expansion] depthwise,
 * 1x1 projection; 1x1 head; pool; classifier), or FALSE. */
static gboolean
mobilenet_names (GPtrArray *tensors, GPtrArray *ops, char **names)
{
  GPtrArray *seq = g_ptr_array_new ();
  guint      k, block = 0;
  gboolean   ok = FALSE, is;
  char       role[64];

  for (guint i = 0; i < ops->len; i++)
    {
      TOp *op = ops->pdata[i];
      if (strcmp (op->op, "ADD") && strcmp (op->op, "RESHAPE") && strcmp (op->op, "SOFTMAX") &&
          strcmp (op->op, "QUANTIZE") && strcmp (op->op, "DEQUANTIZE"))
        g_ptr_array_add (seq, op);
    }
#define OP(j) ((j) < seq->len ? ((TOp *) seq->pdata[j])->op : NULL)
#define IS(j, name) op_is (seq, j, name)
#define AT(j) ((TOp *) seq->pdata[j])
  /* every "goto none" is a return of None (or an IndexError / KeyError caught) */
  if (!IS (0, "CONV_2D") || !kernel_is (tensors, AT (0), 3, 3, &is) || !is)
    goto none;
  if (!name_op (tensors, AT (0), "stem", names))
    goto none;
  k = 1;
  for (;;)
    {
      if (OP (k) == NULL)
        goto none;
      if (IS (k, "CONV_2D"))
        {
          if (OP (k + 1) == NULL)
            goto none;
          if (IS (k + 1, "DEPTHWISE_CONV_2D"))
            {
              g_snprintf (role, sizeof role, "blocks.%u.expand", block);
              if (!name_op (tensors, AT (k), role, names))
                goto none;
              k++;
            }
        }
      if (!IS (k, "DEPTHWISE_CONV_2D"))
        break;
      if (OP (k + 1) == NULL || !IS (k + 1, "CONV_2D") || !kernel_is (tensors, AT (k + 1), 1, 1, &is) || !is)
        goto none;
      g_snprintf (role, sizeof role, "blocks.%u.depthwise", block);
      if (!name_op (tensors, AT (k), role, names))
        goto none;
      g_snprintf (role, sizeof role, "blocks.%u.project", block);
      if (!name_op (tensors, AT (k + 1), role, names))
        goto none;
      k += 2;
      block++;
    }
  if (!IS (k, "CONV_2D") || !kernel_is (tensors, AT (k), 1, 1, &is) || !is ||
      OP (k + 1) == NULL || (!IS (k + 1, "AVERAGE_POOL_2D") && !IS (k + 1, "MEAN")) ||
      OP (k + 2) == NULL || (!IS (k + 2, "CONV_2D") && !IS (k + 2, "FULLY_CONNECTED")) ||
      seq->len != k + 3)
    goto none;
  if (!name_op (tensors, AT (k), "head", names) || !name_op (tensors, AT (k + 2), "classifier", names))
    goto none;
  ok = TRUE;
none:
#undef OP
#undef IS
#undef AT
  g_ptr_array_unref (seq);
  if (!ok)
    for (guint i = 0; i < tensors->len; i++)
      g_clear_pointer (&names[i], g_free);
  return ok;
}

static void
ttensor_free (gpointer p)
{
  TTensor *t = p;

  g_free (t->name);
  g_free (t->stored);
  g_array_unref (t->shape);
  g_array_unref (t->scale);
  g_array_unref (t->zp);
  g_free (t);
}

static void
top_free (gpointer p)
{
  TOp *o = p;

  g_array_unref (o->inputs);
  g_array_unref (o->outputs);
  g_string_free (o->options, TRUE);
  g_free (o);
}

void
cv_tflite_free (CvTflite *t)
{
  if (t == NULL)
    return;
  cv_out_free (t->tensors);
  if (t->buffers != NULL)
    g_ptr_array_unref (t->buffers);
  g_free (t);
}

CvTflite *
cv_tflite_read (const guint8 *data, gsize len, const char *path, GError **error)
{
  Fb           fb = { data, len };
  Tab          model, sg;
  gboolean     bad = FALSE;
  GArray      *codes = NULL, *bufs = NULL, *subgraphs = NULL, *ts = NULL, *optabs = NULL;
  GArray      *inputs = NULL, *outputs = NULL;
  GPtrArray   *tensors = g_ptr_array_new_with_free_func (ttensor_free);
  GPtrArray   *ops = g_ptr_array_new_with_free_func (top_free);
  char       **names = NULL;
  CvTflite    *out = NULL;
  GString     *graph = NULL;
  guint64      root;
  gint64       bad_act = 0;

  if (fb.len < 8 || memcmp (fb.b + 4, "TFL3", 4) != 0)
    {
      cv_fail (error, "not a TFLite flatbuffer (no TFL3 identifier)");
      goto fail;
    }
  fb_get (&fb, 0, 4, &root);
  if (!tab_at (&fb, (gsize) root, &model))
    goto damaged;
  codes = tables (&model, 1, &bad);
  bufs = tables (&model, 4, &bad);
  subgraphs = tables (&model, 2, &bad);
  if (bad)
    goto damaged;
  if (subgraphs->len == 0)
    {
      cv_fail (error, "not enough values to unpack (expected 1, got 0)");
      goto fail;
    }
  sg = g_array_index (subgraphs, Tab, 0);
  ts = tables (&sg, 0, &bad);
  for (guint i = 0; i < ts->len && !bad; i++)
    {
      Tab     *t = &g_array_index (ts, Tab, i), q;
      TTensor *x = g_new0 (TTensor, 1);
      gboolean hq;
      g_ptr_array_add (tensors, x);
      x->shape = int_vector (t, 0, 4, &bad);
      x->type = (int) scalar (t, 1, 1, TRUE, 0, &bad);
      x->buffer = scalar (t, 2, 4, FALSE, 0, &bad);
      x->name = string (t, 3, &bad);
      x->scale = g_array_new (FALSE, FALSE, sizeof (float));
      hq = sub_table (t, 4, &q, &bad);
      if (hq)
        {
          gsize start, n;
          if (vector (&q, 2, 4, &start, &n, &bad))
            for (gsize k = 0; k < n; k++)
              {
                guint64 v = 0;
                guint32 u;
                float   f;
                fb_get (&fb, start + 4 * k, 4, &v);
                u = (guint32) v;
                memcpy (&f, &u, 4);
                g_array_append_val (x->scale, f);
              }
          x->zp = int_vector (&q, 3, 8, &bad);
          x->qdim = scalar (&q, 6, 4, TRUE, 0, &bad);
        }
      else
        x->zp = g_array_new (FALSE, FALSE, sizeof (gint64));
      if (*x->name == '\0')
        {
          g_free (x->name);
          x->name = g_strdup_printf ("tensor%u", i);
        }
      if (!g_utf8_validate (x->name, -1, NULL))
        {
          cv_fail (error, "tensor %u: its name is not UTF-8", i);
          goto fail;
        }
      if (dtype_name (x->type) == NULL)
        {
          cv_fail (error, "%d", x->type);
          goto fail;
        }
    }
  if (bad)
    goto damaged;
  /* operators */
  optabs = tables (&sg, 3, &bad);
  for (guint i = 0; i < optabs->len && !bad; i++)
    {
      Tab     *o = &g_array_index (optabs, Tab, i), opt;
      TOp     *x = g_new0 (TOp, 1);
      gint64   idx = scalar (o, 0, 4, FALSE, 0, &bad), code = 0;
      gboolean has;
      g_ptr_array_add (ops, x);
      x->inputs = int_vector (o, 1, 4, &bad);
      x->outputs = int_vector (o, 2, 4, &bad);
      x->options = g_string_new (NULL);
      if (idx >= (gint64) codes->len)
        {
          cv_fail (error, "list index out of range");
          goto fail;
        }
      {
        Tab *c = &g_array_index (codes, Tab, idx);
        code = MAX (scalar (c, 0, 1, TRUE, 0, &bad), scalar (c, 3, 4, TRUE, 0, &bad));
      }
      for (guint k = 0; k < G_N_ELEMENTS (ops_known); k++)
        if (ops_known[k].code == code)
          x->op = ops_known[k].name;
      if (x->op == NULL)
        {
          cv_fail (error, "%s: builtin operator %" G_GINT64_FORMAT " is not supported", path, code);
          goto fail;
        }
      has = sub_table (o, 4, &opt, &bad);
      if (!options_json (x->op, &opt, has, x->options, &bad_act, &bad))
        {
          cv_fail (error, "%" G_GINT64_FORMAT, bad_act);
          goto fail;
        }
    }
  inputs = int_vector (&sg, 1, 4, &bad);
  outputs = int_vector (&sg, 2, 4, &bad);
  if (bad)
    goto damaged;

  out = g_new0 (CvTflite, 1);
  out->buffers = g_ptr_array_new_with_free_func (g_free);
  out->tensors = cv_out_new ();
  names = g_new0 (char *, tensors->len + 1);
  out->mobilenet = mobilenet_names (tensors, ops, names);
  /* The constants: dequantised in double precision, then float32. */
  for (guint i = 0; i < tensors->len; i++)
    {
      TTensor *x = tensors->pdata[i];
      Tab     *b;
      gsize    start, n, numel = 1;
      float   *f;
      CvTensor t = { 0 };
      const char *wop = NULL;
      int      nd = (int) x->shape->len;
      gint64   shape[8];

      if (x->buffer >= (gint64) bufs->len)
        {
          cv_fail (error, "list index out of range");
          goto fail;
        }
      b = &g_array_index (bufs, Tab, x->buffer);
      vector (b, 0, 1, &start, &n, &bad);
      if (bad)
        goto damaged;
      if (n == 0)
        continue;
      if (nd > 8)
        {
          cv_fail (error, "tensor %u has %d dimensions", i, nd);
          goto fail;
        }
      for (int d = 0; d < nd; d++)
        {
          shape[d] = g_array_index (x->shape, gint64, d);
          if (shape[d] < 0 || (shape[d] > 0 && numel > G_MAXSIZE / 16 / (gsize) shape[d]))
            {
              cv_fail (error, "cannot reshape the data of tensor %u", i);
              goto fail;
            }
          numel *= (gsize) shape[d];
        }
      if (n % dtype_bytes (x->type) != 0 || n / dtype_bytes (x->type) != numel)
        {
          cv_fail (error, "cannot reshape array of size %" G_GSIZE_FORMAT " into shape %s",
                   n / dtype_bytes (x->type), "the tensor's");
          goto fail;
        }
      /* the op that takes it as its weights: the last CONV_2D / DEPTHWISE_CONV_2D */
      for (guint k = 0; k < ops->len; k++)
        {
          TOp *op = ops->pdata[k];
          if ((strcmp (op->op, "CONV_2D") == 0 || strcmp (op->op, "DEPTHWISE_CONV_2D") == 0) &&
              op->inputs->len > 1 && g_array_index (op->inputs, gint64, 1) == (gint64) i)
            wop = op->op;
        }
      f = g_new (float, MAX (numel, 1));
      g_ptr_array_add (out->buffers, f);
      {
        guint  ns = x->scale->len, nz = x->zp->len;
        gint64 stride = 1, qd = x->qdim;
        if (ns > 1)
          {
            if (qd < 0 || qd >= nd || shape[qd] != (gint64) ns || (nz > 1 && nz != ns))
              {
                cv_fail (error, "operands could not be broadcast together");
                goto fail;
              }
            for (int d = nd - 1; d > qd; d--)
              stride *= shape[d];
          }
        else if (ns == 1 && nz > 1)
          {
            cv_fail (error, "cannot reshape array of size %u into shape [1]", nz);
            goto fail;
          }
        for (gsize e = 0; e < numel; e++)
          {
            double v = element (x->type, fb.b + start + e * dtype_bytes (x->type));
            if (ns > 0)
              {
                gsize  c = ns > 1 ? (e / (gsize) stride) % ns : 0;
                double z = nz > 1 ? (double) g_array_index (x->zp, gint64, c)
                                  : nz == 1 ? (double) g_array_index (x->zp, gint64, 0) : 0.0;
                v = (double) g_array_index (x->scale, float, c) * (v - z);
              }
            f[e] = (float) v;
          }
      }
      x->stored = names[i] != NULL ? g_strdup (names[i]) : g_strdup_printf ("const.%u", i);
      t.dtype = CV_DT_F32;
      t.numel = (gint64) numel;
      t.data = (const guint8 *) f;
      t.ndim = nd;
      if (wop != NULL)
        {
          /* TFLite -> PyTorch layouts, as strides over the dequantised data */
          static const int conv[4] = { 0, 3, 1, 2 }, dw[4] = { 3, 0, 1, 2 };
          const int *perm = strcmp (wop, "CONV_2D") == 0 ? conv : dw;
          gint64     st[8], s = 1;
          if (nd != 4)
            {
              cv_fail (error, "axes don't match array");
              goto fail;
            }
          for (int d = 3; d >= 0; d--)
            st[d] = s, s *= shape[d];
          for (int d = 0; d < 4; d++)
            t.shape[d] = shape[perm[d]], t.stride[d] = st[perm[d]];
          if (perm == conv && strcmp (x->stored, "classifier.weight") == 0)
            {
              /* a 1x1 conv on 1x1: [N, 1280] */
              float *g = g_new (float, MAX (numel, 1));
              CvTensor c = t;
              gint64 rest = t.shape[1] * t.shape[2] * t.shape[3];
              for (gsize e = 0; e < numel; e++)
                g[e] = cv_tensor_get_f32 (&c, (gint64) e);
              g_ptr_array_add (out->buffers, g);
              t.data = (const guint8 *) g;
              t.ndim = 2;
              t.shape[1] = rest;
              t.stride[0] = rest, t.stride[1] = 1;
            }
        }
      else
        {
          gint64 s = 1;
          for (int d = nd - 1; d >= 0; d--)
            t.shape[d] = shape[d], t.stride[d] = s, s *= shape[d];
        }
      cv_out_add (out->tensors, x->stored, &t);
      if (out->mobilenet && strcmp (x->stored, "classifier.weight") == 0)
        out->n_out = t.shape[0];
    }
  /* The graph, as json.dumps(graph) writes it. */
  graph = g_string_new ("{\"source\": ");
  js_str (graph, path);
  g_string_append (graph, ", \"tensors\": [");
  for (guint i = 0; i < tensors->len; i++)
    {
      TTensor *x = tensors->pdata[i];
      g_string_append (graph, i ? ", {\"name\": " : "{\"name\": ");
      js_str (graph, x->name);
      g_string_append (graph, ", \"shape\": ");
      js_ints (graph, x->shape);
      g_string_append_printf (graph, ", \"dtype\": \"%s\", \"scale\": ", dtype_name (x->type));
      if (x->scale->len <= 1)
        {
          g_string_append_c (graph, '[');
          if (x->scale->len == 1)
            js_float (graph, g_array_index (x->scale, float, 0));
          g_string_append_c (graph, ']');
        }
      else
        g_string_append (graph, "\"per-channel\"");
      g_string_append (graph, ", \"zero_point\": ");
      if (x->zp->len <= 1)
        js_ints (graph, x->zp);
      else
        g_string_append (graph, "\"per-channel\"");
      if (x->stored != NULL)
        {
          g_string_append (graph, ", \"const\": ");
          js_str (graph, x->stored);
        }
      g_string_append_c (graph, '}');
    }
  g_string_append (graph, "], \"ops\": [");
  for (guint i = 0; i < ops->len; i++)
    {
      TOp *op = ops->pdata[i];
      g_string_append_printf (graph, "%s{\"op\": \"%s\", \"inputs\": ", i ? ", " : "", op->op);
      js_ints (graph, op->inputs);
      g_string_append (graph, ", \"outputs\": ");
      js_ints (graph, op->outputs);
      g_string_append_printf (graph, ", \"options\": %s}", op->options->str);
    }
  g_string_append_printf (graph, "], \"weights_layout\": \"torch\", \"arch\": %s, \"inputs\": ",
                          out->mobilenet ? "\"mobilenet-v2\"" : "null");
  js_ints (graph, inputs);
  g_string_append (graph, ", \"outputs\": ");
  js_ints (graph, outputs);
  g_string_append_c (graph, '}');
  out->tensors->metadata_key = g_strdup ("graph");
  out->tensors->metadata_value = g_string_free (g_steal_pointer (&graph), FALSE);
  /* the input: its shape, and the normalisation its quantisation implies */
  if (inputs->len == 0)
    {
      cv_fail (error, "list index out of range");
      goto fail;
    }
  {
    gint64   in = g_array_index (inputs, gint64, 0);
    TTensor *x;
    if (in < -(gint64) tensors->len || in >= (gint64) tensors->len)
      {
        cv_fail (error, "list index out of range");
        goto fail;
      }
    x = tensors->pdata[in < 0 ? in + (gint64) tensors->len : in];
    out->input_ndim = (int) MIN (x->shape->len, 8);
    for (int d = 0; d < out->input_ndim; d++)
      out->input_shape[d] = g_array_index (x->shape, gint64, d);
    /* uint8 input q = 255 v read as scale (q - zero_point): (v - zp/255) / (1 / (255 scale)) */
    if (x->type == 3 && x->scale->len == 1)
      {
        double s = g_array_index (x->scale, float, 0);
        double z = x->zp->len == 1 ? (double) g_array_index (x->zp, gint64, 0) : 0.0;
        out->mean = z / 255.0;
        out->std = 1.0 / (255.0 * s);
      }
    else
      out->mean = out->std = 0.5;
  }
  goto done;
damaged:
  cv_fail (error, "damaged TFLite flatbuffer (an offset or a vector runs outside the file)");
fail:
  cv_tflite_free (out);
  out = NULL;
done:
  if (graph != NULL)
    g_string_free (graph, TRUE);
  if (names != NULL)
    for (guint i = 0; i < tensors->len; i++)
      g_free (names[i]);
  g_free (names);
  for (GArray **a = (GArray *[]) { codes, bufs, subgraphs, ts, optabs, inputs, outputs }, **e = a + 7; a < e; a++)
    if (*a != NULL)
      g_array_unref (*a);
  g_ptr_array_unref (tensors);
  g_ptr_array_unref (ops);
  return out;
}

CvTflite *
cv_tflite_convert (const char *path, GError **error)
{
  GMappedFile *map = cv_map_file (path, error);
  CvTflite    *out;

  if (map == NULL)
    return NULL;
  out = cv_tflite_read ((const guint8 *) g_mapped_file_get_contents (map),
                        g_mapped_file_get_length (map), path, error);
  /* the dequantised data lives in out->buffers: the file can go */
  g_mapped_file_unref (map);
  return out;
}
