#!/usr/bin/env bash
# Installs the Debian packages the tests and the PDF catalogue need, if any are missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

PACKAGES=(
  openssl          # `openssl ts` checks our RFC 3161 tokens from outside
  poppler-utils    # pdftoppm/pdftotext check the PDF evidence catalogue
  fonts-noto-cjk   # Chinese font embedded in PDFs
  libpango-1.0-0   # WeasyPrint renders PDFs through Pango
  libpangoft2-1.0-0
  libharfbuzz-subset0  # fast, reproducible font subsetting in WeasyPrint (else fontTools: ~20 s/PDF)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "Missing system packages. Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
