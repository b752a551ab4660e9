// Package keyed holds per-upstream state with a bound on the number of keys:
// a key not used for a while is dropped when a new one would pass the bound,
// so a flood of distinct hosts cannot grow memory without bound.
package keyed

import (
	"sync"
	"sync/atomic"
)

// Map is a bounded map from key to state, safe for concurrent use. Values
// are created on first use by the function given to NewMap; a value that has
// been dropped is simply created again later.
//
// Looking up a key that is present takes no lock and writes no shared memory
// in the common case (sync.Map's read path, and a used flag already set), so
// every call to one upstream does not serialise on the map, as it did with a
// mutex-guarded LRU list that moved the key on every request. Only creating a
// key takes the lock. Eviction is CLOCK (second chance), the usual
// approximation of least-recently-used: the hand sweeps the keys in order of
// creation, clears the used flag of each key used since its last pass, and
// drops the first one that was not.
type Map[V any] struct {
	max   int
	newV  func(key string) V
	items sync.Map // string -> *entry[V]
	n     atomic.Int64

	mu   sync.Mutex  // guards ring and hand, and serialises creation
	ring []*entry[V] // keys in order of creation, for the CLOCK hand
	hand int
}

type entry[V any] struct {
	key  string
	v    V
	used atomic.Bool
}

// NewMap returns a Map holding at most max keys (max < 1 means 1), creating
// values with newV.
func NewMap[V any](max int, newV func(key string) V) *Map[V] {
	if max < 1 {
		max = 1
	}
	return &Map[V]{max: max, newV: newV}
}

// Get returns the value for key, creating it if needed.
func (m *Map[V]) Get(key string) V {
	if e, ok := m.items.Load(key); ok {
		en := e.(*entry[V])
		if !en.used.Load() { // read first: no cache-line write on the hot path
			en.used.Store(true)
		}
		return en.v
	}
	return m.create(key)
}

// create makes the value of key under the lock, so that it is made once.
func (m *Map[V]) create(key string) V {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.items.Load(key); ok {
		return e.(*entry[V]).v
	}
	en := &entry[V]{key: key, v: m.newV(key)}
	if len(m.ring) >= m.max {
		m.evictLocked(en)
	} else {
		m.ring = append(m.ring, en)
	}
	m.items.Store(key, en)
	m.n.Store(int64(len(m.ring)))
	return en.v
}

// evictLocked drops the key under the CLOCK hand that was not used since the
// hand last passed it, and puts en in its place. m.mu must be held.
func (m *Map[V]) evictLocked(en *entry[V]) {
	for {
		old := m.ring[m.hand]
		if old.used.Load() {
			old.used.Store(false)
			m.hand = (m.hand + 1) % len(m.ring)
			continue
		}
		m.items.Delete(old.key)
		m.ring[m.hand] = en
		m.hand = (m.hand + 1) % len(m.ring)
		return
	}
}

// Peek returns the value for key without creating it or marking it used.
func (m *Map[V]) Peek(key string) (V, bool) {
	if e, ok := m.items.Load(key); ok {
		return e.(*entry[V]).v, true
	}
	var zero V
	return zero, false
}

// Len returns the number of keys held.
func (m *Map[V]) Len() int { return int(m.n.Load()) }
