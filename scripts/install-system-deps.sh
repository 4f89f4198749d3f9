#!/usr/bin/env bash
# Installs the Debian packages rtvoice needs (only those missing): Chromium for the browser tests,
# Go + etcd for the Kubernetes test environment. Speech (espeak-ng, pocketsphinx) comes from PyPI.
set -euo pipefail
pkgs=(chromium fonts-liberation golang-go etcd-server dpkg-dev rsync openssl golang-github-modern-go-reflect2-dev
      golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
      asterisk-core-sounds-en-wav asterisk-core-sounds-en)  # human speech + transcripts for WER tests
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
