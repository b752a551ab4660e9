package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress counts calls across all drills of a run and shows one progress
// line on w: rewritten in place on a terminal, a line every few seconds
// otherwise (a log, a CI job).
type progress struct {
	total      int64 // calls of the open-loop drills
	nStarted   atomic.Int64
	nDone      atomic.Int64
	nLoop      atomic.Int64 // calls of closed-loop drills done, not in total
	w          io.Writer
	tty        bool
	start      time.Time
	stop, gone chan struct{}
	once       sync.Once
}

func newProgress(w io.Writer, total int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{total: int64(total), w: w, tty: tty, start: time.Now(),
		stop: make(chan struct{}), gone: make(chan struct{})}
}

func (p *progress) started() { p.nStarted.Add(1) }
func (p *progress) done()    { p.nDone.Add(1) }

// loopDone counts a call of a closed-loop drill done: such drills make as
// many calls as their callers can in their duration, so they have no total.
func (p *progress) loopDone() {
	p.nLoop.Add(1)
	p.nDone.Add(1)
}

// run prints the line until finish is called.
func (p *progress) run() {
	defer close(p.gone)
	every := 2 * time.Second
	if p.tty {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			if p.tty {
				fmt.Fprint(p.w, "\r\033[K")
			}
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *progress) print() {
	loop := p.nLoop.Load()
	done, started := p.nDone.Load(), p.nStarted.Load()
	line := fmt.Sprintf("outbound-chaos: %5.1fs  ", time.Since(p.start).Seconds())
	if p.total > 0 {
		line += fmt.Sprintf("%d/%d calls done, ", done-loop, p.total)
	}
	if loop > 0 {
		line += fmt.Sprintf("%d overload calls done, ", loop)
	}
	line += fmt.Sprintf("%d in flight", started-done)
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// finish stops the line and clears it on a terminal.
func (p *progress) finish() {
	p.once.Do(func() { close(p.stop) })
	<-p.gone
}
