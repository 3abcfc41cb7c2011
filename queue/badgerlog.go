package queue

import (
	"context"
	"fmt"
	"log/slog"
)

// badgerLogger sends Badger's log lines to slog; Badger's chatty INFO and DEBUG lines go to DEBUG.
type badgerLogger struct {
	l *slog.Logger
}

func (q *Queue) badgerLogger() badgerLogger { return badgerLogger{l: q.log} }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + trimNL(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + trimNL(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	if !b.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	b.l.Debug("badger: " + trimNL(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	// Badger writes several debug lines per write batch: format them only when they are kept.
	if !b.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	b.l.Debug("badger: " + trimNL(fmt.Sprintf(f, a...)))
}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
