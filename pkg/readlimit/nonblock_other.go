//go:build !unix

package readlimit

const nonblock = 0
