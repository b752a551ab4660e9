//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package hedge

import "net"

// unread reports false: on this platform the hedge layer cannot peek at a
// socket, and a hedge relies on GotFirstResponseByte alone (unread_unix.go).
func unread(net.Conn) bool { return false }
