package clock_test

import (
	"context"
	"fmt"
	"time"

	"github.com/outboundhttp/outbound/internal/clock"
)

func ExampleSleep() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the caller gave up: the wait ends at once
	fmt.Println(clock.Sleep(ctx, time.Hour))
	// Output: context canceled
}
