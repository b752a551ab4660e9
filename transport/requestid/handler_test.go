package requestid

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerKeepsValidID(t *testing.T) {
	for _, id := range []string{
		"0a8e89e5-474d-4eb7-a54d-0a631376bb75",
		"01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"svc:a/b+c=d_e.f",
		strings.Repeat("a", MaxLen),
	} {
		var ctxID, hdr string
		h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctxID, _ = FromContext(r.Context())
			hdr = r.Header.Get(DefaultHeader)
		}), WithGenerator(func() string { t.Error("generator called"); return "gen" }))
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(DefaultHeader, id)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Header().Get(DefaultHeader); got != id || ctxID != id || hdr != id {
			t.Errorf("inbound %q: response %q, context %q, request header %q; want all %q", id, got, ctxID, hdr, id)
		}
	}
}

// hostile inbound values: each must be replaced and never reach the
// response, the request seen by the handler, or the logs.
var hostile = map[string][]string{
	"crlf":        {"abc\r\nSet-Cookie: x=1"},
	"lf":          {"abc\nlevel=ERROR msg=forged"},
	"4KiB":        {strings.Repeat("A", 4096)},
	"129 bytes":   {strings.Repeat("a", MaxLen+1)},
	"unicode":     {"ид-запроса"},
	"empty":       {""},
	"space":       {"a b"},
	"quote":       {`a"b`},
	"control":     {"a\x00b"},
	"del":         {"a\x7fb"},
	"two values":  {"id-1", "id-2"},
	"json escape": {`x","level":"ERROR`},
}

func TestHandlerReplacesHostileIDs(t *testing.T) {
	for name, vals := range hostile {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(LogHandler(slog.NewJSONHandler(&logs, nil)))
			var ctxID string
			var reqHdr []string
			h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctxID, _ = FromContext(r.Context())
				reqHdr = r.Header.Values(DefaultHeader)
				logger.InfoContext(r.Context(), "handled")
			}), WithGenerator(func() string { return "fresh-1" }))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header[http.CanonicalHeaderKey(DefaultHeader)] = vals
			r.Header.Set("Other", "kept")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			if got := w.Header().Values(DefaultHeader); len(got) != 1 || got[0] != "fresh-1" {
				t.Errorf("response header %q; want [fresh-1]", got)
			}
			if ctxID != "fresh-1" {
				t.Errorf("context ID %q; want fresh-1", ctxID)
			}
			if len(reqHdr) != 1 || reqHdr[0] != "fresh-1" {
				t.Errorf("handler saw request header %q; want [fresh-1]", reqHdr)
			}
			// The inbound request itself is not modified.
			if got := r.Header[http.CanonicalHeaderKey(DefaultHeader)]; len(got) != len(vals) || (len(got) > 0 && got[0] != vals[0]) {
				t.Errorf("inbound request header changed to %q", got)
			}
			var rec map[string]any
			if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
				t.Fatalf("log line %q: %v", logs.String(), err)
			}
			if rec[LogKey] != "fresh-1" {
				t.Errorf("log request_id = %v; want fresh-1", rec[LogKey])
			}
			for _, v := range vals {
				if v != "" && strings.Contains(logs.String(), v) {
					t.Errorf("hostile value %q reached the logs: %s", v, logs.String())
				}
			}
		})
	}
}

func TestHandlerGeneratesUUIDByDefault(t *testing.T) {
	var ctxID string
	h := Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctxID, _ = FromContext(r.Context())
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if id := w.Header().Get(DefaultHeader); !Valid(id) || len(id) != 36 || ctxID != id {
		t.Errorf("response ID %q, context ID %q; want the same UUID", id, ctxID)
	}
}

// TestEndToEnd runs two services: A accepts an inbound call through Handler
// and calls B with the inbound context through Transport; B's handler must see
// the ID the client sent to A, with no code in A that copies it.
func TestEndToEnd(t *testing.T) {
	gotB := make(chan [2]string, 1)
	b := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		gotB <- [2]string{id, r.Header.Get(DefaultHeader)}
		io.WriteString(w, "b ok")
	})))
	defer b.Close()

	client := &http.Client{Transport: NewTransport(nil)}
	defer client.CloseIdleConnections()
	a := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})))
	defer a.Close()

	for _, tc := range []struct{ sent, want string }{
		{"trace-abc-123", "trace-abc-123"},
		{"bad id\r\n", ""}, // replaced by A; B sees A's fresh ID
	} {
		req, _ := http.NewRequest(http.MethodGet, a.URL, nil)
		req.Header[http.CanonicalHeaderKey(DefaultHeader)] = []string{tc.sent}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			if tc.want == "" {
				continue // the Go client itself refuses to send a CRLF header
			}
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fromA := resp.Header.Get(DefaultHeader)
		b := <-gotB
		want := tc.want
		if want == "" {
			want = fromA
		}
		if string(body) != "b ok" || b[0] != want || b[1] != want || fromA != want {
			t.Errorf("sent %q: body %q, B context %q, B header %q, A response %q; want %q", tc.sent, body, b[0], b[1], fromA, want)
		}
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func TestLogHandler(t *testing.T) {
	ctx := NewContext(context.Background(), "id-7")
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string
	}{
		{"plain", func(l *slog.Logger) { l.InfoContext(ctx, "m", "k", 1) },
			`{"msg":"m","k":1,"request_id":"id-7"}`},
		{"no context ID", func(l *slog.Logger) { l.InfoContext(context.Background(), "m") },
			`{"msg":"m"}`},
		{"no context", func(l *slog.Logger) { l.Info("m") },
			`{"msg":"m"}`},
		{"with attrs", func(l *slog.Logger) { l.With("a", 1).InfoContext(ctx, "m", "k", 2) },
			`{"msg":"m","a":1,"k":2,"request_id":"id-7"}`},
		{"group stays top level", func(l *slog.Logger) {
			l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h").InfoContext(ctx, "m", "k", 3)
		}, `{"msg":"m","a":1,"request_id":"id-7","g":{"b":2,"h":{"k":3}}}`},
		{"group without ID", func(l *slog.Logger) {
			l.WithGroup("g").With("b", 2).InfoContext(context.Background(), "m", "k", 3)
		}, `{"msg":"m","g":{"b":2,"k":3}}`},
		{"siblings do not share", func(l *slog.Logger) {
			g := l.WithGroup("g")
			_ = g.WithGroup("x").With("y", 1)
			g.WithGroup("z").InfoContext(ctx, "m", "k", 4)
		}, `{"msg":"m","request_id":"id-7","g":{"z":{"k":4}}}`},
		{"wrapped twice", func(l *slog.Logger) {
			slog.New(LogHandler(l.Handler())).InfoContext(ctx, "m")
		}, `{"msg":"m","request_id":"id-7"}`},
		{"empty group and attrs ignored", func(l *slog.Logger) {
			slog.New(l.Handler().WithGroup("").WithAttrs(nil)).InfoContext(ctx, "m")
		}, `{"msg":"m","request_id":"id-7"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
					return slog.Attr{}
				}
				return a
			}})
			tt.log(slog.New(LogHandler(h)))
			if got := strings.TrimSpace(buf.String()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestLogHandlerEnabled(t *testing.T) {
	h := LogHandler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow the wrapped handler's level")
	}
}
