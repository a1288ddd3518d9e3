package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
)

// OnHangup calls reload for every SIGHUP until ctx ends, one call at a
// time. A daemon reloads its config file there.
func OnHangup(ctx context.Context, reload func()) {
	ch := make(chan os.Signal, 1)
	if len(hangupSignals) == 0 {
		return // no SIGHUP on Windows: restart the service to reload
	}
	signal.Notify(ch, hangupSignals...)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				reload()
			}
		}
	}()
}

// ReloadFunc returns what OnHangup runs: read loads the config again
// (validated) and names its file; apply applies it. A file that is gone,
// or read's error, is logged and nothing is applied: the running config
// is kept.
func ReloadFunc[C any](log *slog.Logger, read func() (C, string, error), apply func(C)) func() {
	return func() {
		next, path, err := read()
		if err == nil {
			if _, serr := os.Stat(path); serr != nil {
				err = fmt.Errorf("config %s: %w", path, serr)
			}
		}
		if err != nil {
			log.Error("config reload failed: the running config is kept", "err", err)
			return
		}
		apply(next)
	}
}
