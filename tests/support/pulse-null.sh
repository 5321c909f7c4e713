#!/usr/bin/env bash
# pulse-null.sh — real-time paced fake sound card for ALSA/cpal tests.
#
# Runs a private PulseAudio daemon (as root, non-system mode) with one clocked
# null sink "nullsink" (float32le, 2 ch, 48 kHz) and a native-protocol UNIX
# socket at DIR/native (anonymous auth). No D-Bus, no autospawn, no hardware
# modules, no TCP. ALSA clients reach it through the `pulse` PCM of
# libasound2-plugins; with PULSE_SERVER set, ALSA's `default` PCM is also
# redirected to pulse by /etc/alsa/conf.d/99-pulse.conf (package pulseaudio).
#
#   pulse-null.sh start  DIR               start, wait (<=5 s) for readiness, print env
#   pulse-null.sh env    DIR               print the client env again
#   pulse-null.sh record DIR FILE SECONDS  record nullsink.monitor to a float32 WAV
#   pulse-null.sh stop   DIR               kill daemon + keepalive, remove DIR's files
#
# Packages: apt-get install --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins
set -euo pipefail

SINK=nullsink
RATE=48000
CHANNELS=2
FORMAT=float32le

die() { echo "pulse-null.sh: $*" >&2; exit 1; }

usage() { sed -n '2,16p' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1
DIR=$(realpath -m -- "$2")

# Environment for every pulse *client* we run ourselves (and the one we print).
client_env() {
    echo "PULSE_SERVER=unix:$DIR/native"
    echo "PULSE_COOKIE=$DIR/cookie"
    echo "PULSE_CLIENTCONFIG=$DIR/client.conf"
}
cenv() { env $(client_env) "$@"; }

pid_alive() { # pidfile expected-comm
    local f=$1 comm=$2 pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

kill_pidfile() { # pidfile expected-comm
    local f=$1 comm=$2 pid i
    if pid_alive "$f" "$comm"; then
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 30); do            # <= 3 s
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
}

print_env() {
    local line
    for line in $(client_env); do echo "export $line"; done
    echo "# optional: pin ALSA 'default' to pulse even if the ALSA config was loaded before the"
    echo "# daemon was up (the 99-pulse.conf hook only redirects when the server answers):"
    echo "# export XDG_CONFIG_HOME=$DIR/xdg"
}

case "$cmd" in
start)
    for b in pulseaudio pactl parec; do
        command -v "$b" >/dev/null || die "$b not found (apt-get install --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins)"
    done
    [ -e /usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so ] ||
        ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1 ||
        echo "pulse-null.sh: warning: ALSA pulse plugin missing (libasound2-plugins)" >&2
    [ ${#DIR} -le 100 ] || die "DIR path too long: $DIR/native must fit in a 108-byte UNIX socket path"
    if pid_alive "$DIR/pulseaudio.pid" pulseaudio; then die "already running in $DIR (pid $(cat "$DIR/pulseaudio.pid"))"; fi
    mkdir -p "$DIR/run" "$DIR/state" "$DIR/home" "$DIR/xdg/alsa"
    chmod 700 "$DIR/run" "$DIR/state"
    rm -f "$DIR/native"

    cat >"$DIR/daemon.conf" <<EOF
default-sample-format = $FORMAT
default-sample-rate = $RATE
alternate-sample-rate = $RATE
default-sample-channels = $CHANNELS
exit-idle-time = -1
realtime-scheduling = yes
realtime-priority = 5
high-priority = yes
EOF
    printf 'autospawn = no\n' >"$DIR/client.conf"
    head -c 256 /dev/urandom >"$DIR/cookie"; chmod 600 "$DIR/cookie"
    # Optional explicit ALSA override, only used if the client sets XDG_CONFIG_HOME=$DIR/xdg
    # (alsa.conf loads $XDG_CONFIG_HOME/alsa/asoundrc).
    cat >"$DIR/xdg/alsa/asoundrc" <<EOF
pcm.!default { type pulse hint { show on description "PulseAudio null sink" } }
ctl.!default { type pulse }
EOF

    # Clean environment: no inherited PULSE_*/DBUS/XDG vars; everything lives under DIR.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME="$DIR/home" XDG_RUNTIME_DIR="$DIR/run" XDG_CONFIG_HOME="$DIR/xdg" \
        PULSE_RUNTIME_PATH="$DIR/run" PULSE_STATE_PATH="$DIR/state" \
        PULSE_CONFIG="$DIR/daemon.conf" PULSE_CLIENTCONFIG="$DIR/client.conf" \
        DBUS_SESSION_BUS_ADDRESS=disabled: DBUS_SYSTEM_BUS_ADDRESS=disabled: \
        setsid pulseaudio -n --daemonize=no --system=no --use-pid-file=no \
            --exit-idle-time=-1 --realtime=yes --high-priority=yes \
            --disallow-module-loading=yes --log-target=stderr --log-level=notice \
            --load="module-null-sink sink_name=$SINK rate=$RATE channels=$CHANNELS format=$FORMAT sink_properties=device.description=NullSink" \
            --load="module-native-protocol-unix socket=$DIR/native auth-anonymous=1 auth-cookie-enabled=0" \
        </dev/null >"$DIR/pulseaudio.log" 2>&1 &
    dpid=$!
    echo $dpid >"$DIR/pulseaudio.pid"

    ok=
    for i in $(seq 1 50); do                 # <= ~5 s (+1 s per hung pactl)
        # (check only /proc here: right after the fork, comm may still be bash/setsid)
        [ -d "/proc/$dpid" ] || break
        if [ -S "$DIR/native" ] && cenv timeout 1 pactl info >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    if [ -z "$ok" ]; then
        cat "$DIR/pulseaudio.log" >&2 || true
        kill_pidfile "$DIR/pulseaudio.pid" pulseaudio
        die "daemon did not come up within 5 s"
    fi

    # Keepalive: an idle null sink renders in 2 s blocks, so a newly opened stream can stall
    # up to 2 s before its first steady callback. A permanent 10 ms-latency reader on the
    # monitor keeps the sink's block size at ~10 ms. Then suspend/resume the sink once to
    # drop the 2 s block already scheduled at startup.
    cenv setsid parec -d "$SINK.monitor" --latency-msec=10 --raw \
        --format=$FORMAT --rate=$RATE --channels=$CHANNELS </dev/null >/dev/null 2>>"$DIR/keepalive.log" &
    echo $! >"$DIR/keepalive.pid"
    for i in $(seq 1 30); do                 # <= 3 s for the reader to appear
        if cenv timeout 1 pactl list short source-outputs 2>/dev/null | grep -q .; then break; fi
        sleep 0.1
    done
    cenv timeout 2 pactl suspend-sink "$SINK" 1 && cenv timeout 2 pactl suspend-sink "$SINK" 0 ||
        echo "pulse-null.sh: warning: suspend/resume of $SINK failed" >&2

    echo "# pulseaudio pid $(cat "$DIR/pulseaudio.pid"), sink $SINK ($FORMAT ${CHANNELS}ch ${RATE}Hz), ALSA PCM: pulse (or default)"
    print_env
    ;;
env)
    print_env
    ;;
record)
    [ $# -eq 4 ] || usage
    out=$3 secs=$4
    pid_alive "$DIR/pulseaudio.pid" pulseaudio || die "not running in $DIR"
    # SIGINT makes parec finalize the WAV header; -k guards against a hang.
    cenv timeout -s INT -k 2 "$secs" parec -d "$SINK.monitor" --latency-msec=10 \
        --format=$FORMAT --rate=$RATE --channels=$CHANNELS --file-format=wav "$out" || true
    ;;
stop)
    kill_pidfile "$DIR/keepalive.pid" parec
    kill_pidfile "$DIR/pulseaudio.pid" pulseaudio
    rm -rf "$DIR/run" "$DIR/state" "$DIR/home" "$DIR/xdg"
    rm -f "$DIR/native" "$DIR/daemon.conf" "$DIR/client.conf" "$DIR/cookie" \
          "$DIR/pulseaudio.log" "$DIR/keepalive.log"
    rmdir "$DIR" 2>/dev/null || true
    ;;
*)
    usage
    ;;
esac
