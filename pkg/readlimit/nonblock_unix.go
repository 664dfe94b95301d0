//go:build unix

package readlimit

import "syscall"

const nonblock = syscall.O_NONBLOCK
