package jaeger

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestConfigListensOnLoopbackOnly keeps every endpoint of config.yaml on
// 127.0.0.1 and the pipeline to the one OTLP receiver: the tests send
// nothing beyond the machine, and Jaeger opens no port they do not use (the
// default configuration also opens gRPC, Thrift, Zipkin, sampling, zpages
// and Prometheus ports).
func TestConfigListensOnLoopbackOnly(t *testing.T) {
	f, err := os.Open("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	endpoints := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(line, "endpoint:"); ok {
			endpoints++
			if v = strings.Trim(strings.TrimSpace(v), `"`); !strings.HasPrefix(v, "127.0.0.1:") {
				t.Errorf("config.yaml:%d: endpoint %q; want 127.0.0.1:PORT", n, v)
			}
		}
		if v, ok := strings.CutPrefix(line, "receivers:"); ok && strings.TrimSpace(v) != "" && strings.TrimSpace(v) != "[otlp]" {
			t.Errorf("config.yaml:%d: receivers %s; want [otlp] only", n, strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if endpoints != 3 {
		t.Errorf("config.yaml has %d endpoints; want 3 (OTLP/HTTP, query HTTP, query gRPC)", endpoints)
	}
}
