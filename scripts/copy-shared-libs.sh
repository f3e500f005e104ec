#!/bin/sh
# Copies exactly the shared libraries a dynamically linked executable loads, as `ldd` lists them (the dynamic loader
# included), into ROOT at the same absolute paths, dereferencing symlinks: the libraries a `FROM scratch` image needs
# for that executable and nothing else. The Containerfile runs it on the `deno compile` output (glibc-dynamic).
#
# Usage: scripts/copy-shared-libs.sh EXECUTABLE ROOT
# Prints each copied path. Fails when ldd fails or a library is "not found". A static executable needs nothing.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: $0 EXECUTABLE ROOT" >&2
  exit 2
fi
exe=$1
root=${2%/}
if [ ! -f "$exe" ] || [ ! -x "$exe" ]; then
  echo "$0: $exe is not an executable file" >&2
  exit 1
fi

if ! listing=$(ldd "$exe" 2>&1); then
  case $listing in
    *"not a dynamic executable"* | *"statically linked"*)
      echo "$0: $exe is statically linked; no libraries to copy" >&2
      exit 0
      ;;
  esac
  echo "$0: ldd $exe failed: $listing" >&2
  exit 1
fi

copied=0
# Each line is one of:
#   linux-vdso.so.1 (0x...)                                    provided by the kernel: nothing to copy
#   libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)       a library, by the path the loader resolved
#   /lib64/ld-linux-x86-64.so.2 (0x...)                        the dynamic loader (PT_INTERP), by absolute path
#   libfoo.so.1 => not found                                   a missing library: fail
while IFS= read -r line; do
  line=$(printf '%s' "$line" | sed 's/^[[:space:]]*//')
  case $line in
    *"=> not found"*)
      echo "$0: ldd $exe: ${line%% *} not found" >&2
      exit 1
      ;;
    *" => "/*) path=${line#* => } ;;
    /*) path=$line ;;
    *) continue ;;
  esac
  path=${path%% (*}
  mkdir -p "$root$(dirname "$path")"
  cp -L "$path" "$root$path"
  echo "$path"
  copied=$((copied + 1))
done <<LISTING
$listing
LISTING

if [ "$copied" -eq 0 ]; then
  echo "$0: ldd listed no libraries for $exe" >&2
  exit 1
fi
