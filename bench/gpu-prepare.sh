#!/bin/sh
# bench/gpu-prepare.sh — on the Debian 12 build host: build the engine natively
# (build-host/) and download the runtime libraries a GPU host lacks into
# bench/gpu-debs/ (see ../shared/docs/environment.md).  Then ship the checkout
# with build-host/ and bench/gpu-debs/ and run bench/gpu-run.sh there.
set -eu
cd "$(dirname "$0")/.."
apt-get install -y -qq build-essential meson ninja-build pkgconf libglib2.0-dev libjson-glib-dev \
  libpng-dev libopenblas-dev ocl-icd-opencl-dev opencl-c-headers libclblast-dev >/dev/null
# No libcurl on the GPU hosts: the benchmark binary does not download models.
[ -f build-host/build.ninja ] || meson setup build-host -Dmodels=disabled
meson compile -C build-host
mkdir -p bench/gpu-debs
cd bench/gpu-debs
apt-get download ocl-icd-libopencl1 libclblast1 clinfo libjson-glib-1.0-0 libopenblas0-pthread \
  libopenblas0 libgfortran5 libglib2.0-0 libpng16-16 libffi8 libpcre2-8-0
ls -l
