// Package redisrate is a rate limit shared by many replicas of a service
// through Redis, for one account-wide quota at an upstream: a limit kept per
// process would let N replicas send N times the quota. It plugs into the
// ratelimit Transport with ratelimit.WithSharedLimiter.
//
// The limit is GCRA (github.com/go-redis/redis_rate), one Lua script and one
// round trip per request. When Redis cannot be reached the behaviour is an
// explicit choice: fail open (the default) decides locally at this replica's
// share of the rate (WithReplicas) and reports the fallback through the
// Transport's Observer; fail closed refuses every request with an error
// matching ratelimit.ErrLimited.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
//	rt := ratelimit.NewTransport(nil, ratelimit.WithSharedLimiter(
//		redisrate.New(rdb, redis_rate.PerSecond(100), redisrate.WithReplicas(4))))
//
// redisrate is a module of its own, so go-redis and redis_rate are in the
// module graph of the programs that import it, not of every program that
// imports outbound.
package redisrate

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/outboundhttp/outbound/internal/keyed"
	"github.com/outboundhttp/outbound/transport/ratelimit"
)

// FailureMode says what the Limiter does when Redis cannot be reached.
type FailureMode int

const (
	// FailOpen decides locally, at 1/replicas of the shared rate
	// (WithReplicas), and reports the fallback through
	// ratelimit.Observer.Fallback. It is the default: an outage of the
	// limiter's store should not become an outage of every call, and the
	// local share keeps the replicas together near the quota.
	FailOpen FailureMode = iota
	// FailClosed refuses every request while Redis cannot be reached, with
	// a *ratelimit.LimitError (matching ratelimit.ErrLimited) wrapping the
	// Redis error. For quotas whose overrun costs more than refused calls.
	FailClosed
)

// String returns "fail_open" or "fail_closed".
func (m FailureMode) String() string {
	switch m {
	case FailOpen:
		return "fail_open"
	case FailClosed:
		return "fail_closed"
	}
	return fmt.Sprintf("FailureMode(%d)", int(m))
}

// Defaults.
const (
	// DefaultPrefix is put before every upstream key in Redis (redis_rate
	// adds its own "rate:" in front).
	DefaultPrefix = "outbound:"
	// DefaultTimeout bounds one call to Redis; a slower Redis counts as
	// unreachable, so a struggling limiter store adds at most this much to
	// a request.
	DefaultTimeout = 200 * time.Millisecond
	// DefaultRetryInterval is how long the Limiter decides without Redis
	// after a failure before asking Redis again, so that an outage costs one
	// failed call per interval rather than one per request.
	DefaultRetryInterval = time.Second
	// DefaultMaxKeys bounds the keys of the local fallback limiters.
	DefaultMaxKeys = 1024
)

// Limiter is a ratelimit.Limiter backed by Redis. It is safe for concurrent
// use; build it with New. It does not own the Redis client: closing the
// client is the caller's job.
type Limiter struct {
	rl            *redis_rate.Limiter
	limit         redis_rate.Limit
	prefix        string
	mode          FailureMode
	replicas      int
	timeout       time.Duration
	retryInterval time.Duration
	maxKeys       int
	local         *keyed.Map[*rate.Limiter]
	now           func() time.Time

	downUntil atomic.Int64 // UnixNano until which Redis is not asked; 0: healthy
	lastErr   atomic.Pointer[error]
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// Option configures a Limiter.
type Option interface{ apply(*Limiter) }

type optionFunc func(*Limiter)

func (f optionFunc) apply(l *Limiter) { f(l) }

// WithPrefix sets the string put before every key in Redis, so that several
// limits (or services) can share one Redis. Default DefaultPrefix.
func WithPrefix(p string) Option { return optionFunc(func(l *Limiter) { l.prefix = p }) }

// WithFailureMode chooses what happens when Redis cannot be reached. Default
// FailOpen.
func WithFailureMode(m FailureMode) Option {
	if m != FailOpen && m != FailClosed {
		panic(fmt.Sprintf("redisrate: WithFailureMode(%d): unknown mode", int(m)))
	}
	return optionFunc(func(l *Limiter) { l.mode = m })
}

// WithReplicas sets how many replicas share the limit, so that each one
// falls back to 1/n of the rate and of the burst (at least 1) when Redis
// cannot be reached, keeping the replicas together near the quota. Default
// 1 (the whole rate: set it). It panics if n < 1.
func WithReplicas(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("redisrate: WithReplicas(%d): n must be at least 1", n))
	}
	return optionFunc(func(l *Limiter) { l.replicas = n })
}

// WithTimeout bounds each call to Redis. Default DefaultTimeout (200 ms). It
// panics if d is not positive.
func WithTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("redisrate: WithTimeout(%v): d must be positive", d))
	}
	return optionFunc(func(l *Limiter) { l.timeout = d })
}

// WithRetryInterval sets how long after a Redis failure the Limiter decides
// without asking Redis. Default DefaultRetryInterval (1 s). It panics if d is
// not positive.
func WithRetryInterval(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("redisrate: WithRetryInterval(%v): d must be positive", d))
	}
	return optionFunc(func(l *Limiter) { l.retryInterval = d })
}

// WithMaxKeys bounds the number of keys whose local fallback limiter is kept
// (least recently used dropped first). Default DefaultMaxKeys. It panics if
// n < 1.
func WithMaxKeys(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("redisrate: WithMaxKeys(%d): n must be at least 1", n))
	}
	return optionFunc(func(l *Limiter) { l.maxKeys = n })
}

// New returns a Limiter allowing limit across every process that uses the
// same Redis, prefix and key. client may be a *redis.Client, a cluster or a
// ring client. It panics if client is nil or limit has a rate, burst or
// period that is not positive.
func New(client redis.UniversalClient, limit redis_rate.Limit, opts ...Option) *Limiter {
	if client == nil {
		panic("redisrate: New: nil client")
	}
	if limit.Rate < 1 || limit.Burst < 1 || limit.Period <= 0 {
		panic(fmt.Sprintf("redisrate: New: invalid limit %v: rate, burst and period must be positive", limit))
	}
	l := &Limiter{
		rl:            redis_rate.NewLimiter(client),
		limit:         limit,
		prefix:        DefaultPrefix,
		replicas:      1,
		timeout:       DefaultTimeout,
		retryInterval: DefaultRetryInterval,
		maxKeys:       DefaultMaxKeys,
		now:           time.Now,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(l)
		}
	}
	perSecond := float64(limit.Rate) / limit.Period.Seconds() / float64(l.replicas)
	burst := max(1, limit.Burst/l.replicas)
	l.local = keyed.NewMap(l.maxKeys, func(string) *rate.Limiter {
		return rate.NewLimiter(rate.Limit(perSecond), burst)
	})
	return l
}

// Allow asks Redis for one request to key under the shared limit. While Redis
// cannot be reached (an error or no answer within the timeout) and for the
// retry interval after, it decides locally at this replica's share of the
// rate and sets Result.Fallback to the Redis error (FailOpen), or returns the
// error (FailClosed), which the Transport turns into a refusal.
func (l *Limiter) Allow(ctx context.Context, key string) (ratelimit.Result, error) {
	now := l.now()
	if until := l.downUntil.Load(); until != 0 && now.UnixNano() < until {
		return l.degraded(key, now, *l.lastErr.Load())
	}
	rctx, cancel := context.WithTimeout(ctx, l.timeout)
	res, err := l.rl.Allow(rctx, l.prefix+key, l.limit)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; Redis is not to blame.
			return ratelimit.Result{}, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Our own timeout, not the caller's deadline: keep it from
			// matching context.DeadlineExceeded, which callers read as
			// their own time running out.
			err = fmt.Errorf("redisrate: redis unreachable: no answer within %v", l.timeout)
		} else {
			err = fmt.Errorf("redisrate: redis unreachable: %w", err)
		}
		l.lastErr.Store(&err)
		l.downUntil.Store(now.Add(l.retryInterval).UnixNano())
		return l.degraded(key, now, err)
	}
	if l.downUntil.Load() != 0 {
		l.downUntil.Store(0)
	}
	if res.Allowed > 0 {
		return ratelimit.Result{Allowed: true}, nil
	}
	return ratelimit.Result{RetryAfter: res.RetryAfter}, nil
}

// degraded decides without Redis, as the failure mode says.
func (l *Limiter) degraded(key string, now time.Time, cause error) (ratelimit.Result, error) {
	if l.mode == FailClosed {
		return ratelimit.Result{}, cause
	}
	lim := l.local.Get(key)
	if lim.AllowN(now, 1) {
		return ratelimit.Result{Allowed: true, Fallback: cause}, nil
	}
	// Same answer as Redis would give: not now, ask again after d.
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return ratelimit.Result{RetryAfter: d, Fallback: cause}, nil
}
