module mirrorhook.dev/helm_render

go 1.19
