// Package keyed holds per-upstream state with a bound on the number of keys:
// the least recently used key is dropped when a new one would pass the bound,
// so a flood of distinct hosts cannot grow memory without bound.
package keyed

import (
	"container/list"
	"sync"
)

// Map is a bounded, least-recently-used map from key to state. It is safe for
// concurrent use. Values are created on first use by the New function given to
// NewMap; a value that has been dropped is simply created again later.
type Map[V any] struct {
	mu    sync.Mutex
	max   int
	newV  func(key string) V
	items map[string]*list.Element
	order list.List // front: most recently used
}

type entry[V any] struct {
	key string
	v   V
}

// NewMap returns a Map holding at most max keys (max < 1 means 1), creating
// values with newV.
func NewMap[V any](max int, newV func(key string) V) *Map[V] {
	if max < 1 {
		max = 1
	}
	return &Map[V]{max: max, newV: newV, items: make(map[string]*list.Element)}
}

// Get returns the value for key, creating it if needed.
func (m *Map[V]) Get(key string) V {
	m.mu.Lock()
	if el, ok := m.items[key]; ok {
		m.order.MoveToFront(el)
		v := el.Value.(*entry[V]).v
		m.mu.Unlock()
		return v
	}
	v := m.newV(key)
	m.items[key] = m.order.PushFront(&entry[V]{key: key, v: v})
	if m.order.Len() > m.max {
		el := m.order.Back()
		m.order.Remove(el)
		delete(m.items, el.Value.(*entry[V]).key)
	}
	m.mu.Unlock()
	return v
}

// Peek returns the value for key without creating it or changing its recency.
func (m *Map[V]) Peek(key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		return el.Value.(*entry[V]).v, true
	}
	var zero V
	return zero, false
}

// Len returns the number of keys held.
func (m *Map[V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}
