package proc

import "syscall"

func syscallGetpgrp() int { return syscall.Getpgrp() }
