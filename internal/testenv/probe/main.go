// Command probe is a static program the multi-platform tests put in
// FROM-scratch images, built once per architecture, to show where it runs:
// the kernel's machine name (uname -m), which is the emulated one under
// qemu-user.
//
//	probe write PATH      writes "GOARCH MACHINE" to PATH (a RUN step)
//	probe cat PATH        prints PATH
//	probe fail-on MACHINE prints the machine; exits 1 when it is MACHINE
package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

func machine() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "unknown"
	}
	b := make([]byte, 0, len(u.Machine))
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe write PATH | cat PATH | fail-on MACHINE")
		os.Exit(2)
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "write":
		if err := os.WriteFile(arg, []byte(runtime.GOARCH+" "+machine()+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "cat":
		b, err := os.ReadFile(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_, _ = os.Stdout.Write(b)
	case "fail-on":
		m := machine()
		fmt.Println("running on", m)
		if m == arg {
			fmt.Println("failing on purpose on", m)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}
