module mirrorhook.dev/bench/openloop

go 1.19
