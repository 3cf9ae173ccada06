#!/bin/sh
# The sample app's restart: stop the running one (its pid in shared/), start this
# release's in a session of its own (the restart command's own processes end with it).
pidfile="$STEEP_DEPLOY_PATH/shared/app.pid"
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  kill "$old" 2>/dev/null
  while kill -0 "$old" 2>/dev/null; do sleep 0.02; done
fi
setsid python3 "$STEEP_DEPLOY_PATH/current/app.py" "$PORT" > "$STEEP_DEPLOY_PATH/shared/app.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
# return once it listens: the restart's process group is ended when this script returns
python3 - "$PORT" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.02)
PY
