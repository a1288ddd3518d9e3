package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// Notify sends state ("READY=1", "STOPPING=1", "STATUS=…", "WATCHDOG=1";
// several joined by newlines) to the service manager at NOTIFY_SOCKET, as
// sd_notify(3) does. Without NOTIFY_SOCKET (not under systemd, or not
// Type=notify) it does nothing and returns nil.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// WatchdogInterval is the service's WatchdogSec (WATCHDOG_USEC), when the
// manager set one for this process (WATCHDOG_PID, when set, is ours).
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	return time.Duration(usec) * time.Microsecond, true
}

// Watchdog sends WATCHDOG=1 every half WatchdogSec until ctx ends, each
// time only if healthy says the daemon's main loop works: a hung daemon
// stops petting and the manager restarts it. Without a watchdog it
// returns at once.
func Watchdog(ctx context.Context, log *slog.Logger, healthy func(context.Context) error) {
	every, ok := WatchdogInterval()
	if !ok {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, every/2)
		err := healthy(hctx)
		cancel()
		if err != nil {
			log.Warn("watchdog: not healthy, not notifying systemd", "err", err)
			continue
		}
		if err := Notify("WATCHDOG=1"); err != nil {
			log.Warn("watchdog", "err", err)
		}
	}
}

// Draining is what a daemon tells the service manager as it starts to
// drain: STOPPING=1 when it is ending, RELOADING=1 when it re-executes
// itself in place (SIGUSR2, same pid) and will say READY=1 again — after
// STOPPING=1 systemd would take the drain as the service's end and kill
// what it started.
func Draining(restarting bool) string {
	if restarting {
		return "RELOADING=1\nSTATUS=restarting"
	}
	return "STOPPING=1\nSTATUS=draining"
}
