#!/usr/bin/env bash
# Set up npc-voice on a fresh Debian machine: system libraries, a virtual environment, the package.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# PortAudio for the live microphone/speaker (the demo says so clearly if it is missing).
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need_apt+=(libportaudio2)
# eSpeak NG and festival voices synthesise the training and test speech (the NPC's own voice is the
# espeakng-loader library, from PyPI).
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v text2wave >/dev/null || need_apt+=(festival)
# The live-path tests and the mouth-to-ear bench run on a private PulseAudio server with virtual devices
# (npc_voice/audio/pulse.py); libasound2-plugins gives PortAudio its `pulse` device.
command -v pulseaudio >/dev/null || need_apt+=(pulseaudio)
command -v pacat >/dev/null || need_apt+=(pulseaudio-utils)
ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1 || need_apt+=(libasound2-plugins)
# resemblyzer's webrtcvad dependency has no wheel: pip builds it (a C compiler and Python's headers).
command -v gcc >/dev/null || need_apt+=(gcc)
python3.11 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
    2>/dev/null || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "setup: please install ${need_apt[*]} (sudo apt-get install ${need_apt[*]}); continuing without" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.npc-voice-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    # torch is pinned to the CPU build (torch==2.13.0) in pyproject.toml; a bare 'torch' pulls CUDA.
    .venv/bin/pip install -q -e ".[dev,cascade,recognisers]"
    touch "$stamp"
fi
