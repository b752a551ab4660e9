//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package hedge

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestUnread asks a real TLS connection, as net/http hands it to GotConn:
// nothing waits before the request, the answer waits once the server has
// flushed it (loopback delivers a write into the peer's receive queue before
// the write returns), and nothing once it is read. The TLS connection is
// asked through the TCP connection under it.
func TestUnread(t *testing.T) {
	flushed := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
		w.(http.Flusher).Flush()
		close(flushed)
	}))
	// No TLS 1.3 session ticket, which the server sends after the handshake
	// and which would wait in the socket before the request.
	srv.TLS = &tls.Config{SessionTicketsDisabled: true}
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	if unread(conn) {
		t.Fatal("unread before the request was sent")
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-flushed
	if !unread(conn) {
		t.Fatal("the flushed answer is not seen waiting in the socket")
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
	if unread(conn) {
		t.Error("unread after the answer was read to the end")
	}
}
