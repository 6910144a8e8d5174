/* cv-vae.h — the latent packs' decoders and encoders from safetensors files
 * (cv-vae.c, as converters/gfcg_convert/sd_decoders.py). */
#ifndef GFCG_CV_VAE_H
#define GFCG_CV_VAE_H

#include "cv.h"

/* EDM2's standardisation of SD latents (NVlabs/edm2 StabilityVAEEncoder). */
#define CV_EDM2_LATENT "{\"raw_mean\": [5.81, 3.25, 0.12, -2.15], \"raw_std\": [4.17, 4.62, 3.71, 3.28], " \
  "\"final_mean\": 0.0, \"final_std\": 0.5, \"decoded_range\": [0.0, 1.0]}"

/* One component: its arch, config, tensors (the file's names) and source. */
typedef struct
{
  const char *arch;
  JsonObject *cfg;
  CvOutFile  *tensors;
  JsonObject *info;
  gint64      latent_channels;
  gpointer    file; /* the open safetensors file the tensors point into */
} CvComp;

void    cv_comp_free     (CvComp *c);
/* The SD VAE's decoder (decoder.*, post_quant_conv.*) or, with encoder, its
 * encoder (encoder.*, quant_conv.*); config_path: the VAE's config.json or NULL. */
CvComp *cv_convert_vae   (const char *path, const char *config_path, gboolean encoder, GError **error);
/* TAESD's decoder or encoder (standalone file or diffusers' AutoencoderTiny). */
CvComp *cv_convert_taesd (const char *path, gboolean encoder, GError **error);

#endif
