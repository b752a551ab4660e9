package redisrate_test

import (
	"net/http"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/outboundhttp/outbound/transport/ratelimit"
	"github.com/outboundhttp/outbound/transport/ratelimit/redisrate"
)

// One quota of 100 requests per second at an upstream, shared by the 4
// replicas of a service through Redis. If Redis cannot be reached, each
// replica falls back to 25 requests per second (fail open, the default) and
// reports it through the Observer.
//
// (Compiled, not run: it needs a Redis server.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	shared := redisrate.New(rdb, redis_rate.PerSecond(100),
		redisrate.WithReplicas(4),
		redisrate.WithFailureMode(redisrate.FailOpen),
	)
	client := &http.Client{Transport: ratelimit.NewTransport(http.DefaultTransport,
		ratelimit.WithSharedLimiter(shared),
		ratelimit.WithConcurrency(64),
	)}
	resp, err := client.Get("https://api.example.com/v1/things")
	if err != nil {
		return
	}
	resp.Body.Close()
}
