package keyed

import (
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGetCreatesOnceAndEvictsLeastRecentlyUsed(t *testing.T) {
	created := map[string]int{}
	m := NewMap(2, func(k string) *string { created[k]++; s := k; return &s })

	a := m.Get("a")
	if m.Get("a") != a {
		t.Fatal("Get returned a new value for an existing key")
	}
	m.Get("b")
	m.Get("a") // a is now the most recently used
	m.Get("c") // evicts b
	if _, ok := m.Peek("b"); ok {
		t.Fatal("b was not evicted")
	}
	if _, ok := m.Peek("a"); !ok {
		t.Fatal("a was evicted although recently used")
	}
	if m.Len() != 2 {
		t.Fatalf("len %d; want 2", m.Len())
	}
	if created["a"] != 1 {
		t.Fatalf("a created %d times; want 1", created["a"])
	}
}

func TestBoundedUnderManyKeys(t *testing.T) {
	m := NewMap(100, func(k string) int { return len(k) })
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25000; i++ {
				m.Get(fmt.Sprintf("host-%d-%d", g, i))
			}
		}(g)
	}
	wg.Wait()
	if m.Len() != 100 {
		t.Fatalf("len = %d after 100000 keys; want 100", m.Len())
	}
}

func TestNonPositiveMax(t *testing.T) {
	m := NewMap(0, func(string) int { return 1 })
	m.Get("a")
	m.Get("b")
	if m.Len() != 1 {
		t.Fatalf("len = %d; want 1", m.Len())
	}
}

// TestSecondChance: a key used since the hand last passed survives the next
// eviction; one not used is dropped, whatever its age.
func TestSecondChance(t *testing.T) {
	m := NewMap(3, func(k string) string { return k })
	m.Get("a")
	m.Get("b")
	m.Get("c")
	m.Get("a") // used: gets a second chance
	m.Get("c") // used
	m.Get("d") // evicts b, the only one not used
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok := m.Peek(k); ok != want {
			t.Errorf("Peek(%q) present = %v; want %v", k, ok, want)
		}
	}
	if m.Len() != 3 {
		t.Fatalf("len = %d; want 3", m.Len())
	}
}

func BenchmarkGetHit(b *testing.B) {
	m := NewMap(1024, func(k string) int { return len(k) })
	m.Get("https://api.example.com:443")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Get("https://api.example.com:443")
		}
	})
}
