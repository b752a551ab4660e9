//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package hedge

import (
	"crypto/tls"
	"net"
	"syscall"
)

// unread reports whether conn has bytes in its socket's receive queue that
// nobody has read, by peeking at one without taking it (recv with MSG_PEEK
// and MSG_DONTWAIT). It uses RawConn.Control, which, unlike RawConn.Read,
// does not wait for the read lock that net/http's reader holds while it
// waits for the answer. A TLS connection is asked through the TCP connection
// it runs on; one that negotiated HTTP/2 is not asked at all (its bytes may
// belong to any stream), nor is a connection that is not a socket. An
// unencrypted HTTP/2 connection (http.Protocols with UnencryptedHTTP2)
// cannot be told from HTTP/1 here: another stream's frames can make it
// report true. Bytes
// that are not the answer (a TLS 1.3 session ticket on a new connection that
// the reader has not taken yet) make it report true too: the hedge is then
// left out, the cautious way to be wrong.
func unread(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return false
		}
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var (
		n    int
		perr error
		one  [1]byte
	)
	if err := raw.Control(func(fd uintptr) {
		n, _, perr = syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	return perr == nil && n > 0
}
