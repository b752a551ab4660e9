module github.com/outboundhttp/outbound/transport/ratelimit/redisrate

go 1.26.8

require (
	github.com/go-redis/redis_rate/v10 v10.0.1
	github.com/outboundhttp/outbound v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.23.0
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.16.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dunglas/httpsfv v1.1.2 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

// redisrate builds against this checkout of outbound. A replace applies only
// when this module is the main module (its own tests, make test); a program
// that requires redisrate requires a version of outbound as well.
replace github.com/outboundhttp/outbound => ../../..
