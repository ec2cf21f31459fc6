#!/usr/bin/env bash
# The amd64 .deb, made by CPack from this build: control metadata, file list, an
# install with dpkg into a scratch root, Depends satisfiable on this machine, the
# installed weir validates the shipped config, and systemd-analyze accepts the unit.
#   deb_test.sh BUILD_DIR VERSION
# Exit 77 (ctest SKIP) only when a tool it needs cannot run here.
set -euo pipefail
build=$1
version=$2
arch=$(dpkg --print-architecture)
tmp=$(mktemp -d /tmp/weir-deb-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

for tool in cpack dpkg-deb dpkg; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# --- build the package from this build tree ------------------------------------
cpack --config "$build/CPackConfig.cmake" -B "$tmp/cpack" \
  -D CPACK_OUTPUT_FILE_PREFIX="$tmp/out" > "$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$tmp/out/weir_${version}_${arch}.deb
[[ -f "$deb" ]] || { ls -R "$tmp/out" >&2; fail "no $deb (name must be weir_<version>_<arch>.deb)"; }
ok "cpack made $(basename "$deb")"

# --- control metadata --------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[[ "$(field Package)" == weir ]] || fail "Package is '$(field Package)'"
[[ "$(field Version)" == "$version" ]] || fail "Version is '$(field Version)', want $version"
[[ "$(field Architecture)" == "$arch" ]] || fail "Architecture is '$(field Architecture)'"
[[ -n "$(field Maintainer)" ]] || fail "no Maintainer"
[[ "$(field Section)" == net ]] || fail "Section is '$(field Section)'"
grep -q "stream processor" <<< "$(field Description)" || fail "Description: $(field Description)"
depends=$(field Depends)
echo "Depends: $depends"
# weir links these directly (dpkg-shlibdeps must have found each of them).
for lib in libc6 libstdc++6 libsqlite3-0 libuv1 libpaho-mqtt1.3 libsystemd0; do
  tr ',' '\n' <<< "$depends" | sed 's/^ *//; s/ .*//' | grep -qxF "$lib" || fail "Depends lacks $lib"
done
grep -Eq 'libc6 \(>= [0-9]' <<< "$depends" || fail "libc6 without a minimum version"
grep -qF 'libpaho-mqtt1.3 (>= 1.3.10)' <<< "$depends" ||
  fail "Depends lacks libpaho-mqtt1.3 (>= 1.3.10) (journal-before-ack ordering)"
[[ "$(dpkg-deb -I "$deb" conffiles)" == "/etc/weir/weir.json" ]] ||
  fail "conffiles: $(dpkg-deb -I "$deb" conffiles 2>&1)"
ok "dpkg-deb -I: Package, Version, Architecture, Depends, conffiles"

# --- file list ---------------------------------------------------------------------
dpkg-deb -c "$deb" > "$tmp/listing"
awk '{print $6}' "$tmp/listing" | sed 's#^\./#/#; s#/$##' | sort > "$tmp/files"
for f in /usr/bin/weir /usr/lib/systemd/system/weir.service /etc/weir/weir.json \
         /usr/share/doc/weir/README.md; do
  grep -qx "$f" "$tmp/files" || fail "package lacks $f"
done
if grep -Eq 'weir-sim|weir-sink|/usr/usr|/work/|/include/|\.a$' "$tmp/files"; then
  grep -E 'weir-sim|weir-sink|/usr/usr|/work/|/include/|\.a$' "$tmp/files" >&2
  fail "package holds files a gateway does not need"
fi
grep -q -- '-rwxr-xr-x root/root .* ./usr/bin/weir$' "$tmp/listing" ||
  fail "/usr/bin/weir is not root-owned 0755"
grep -q -- '-rw-r--r-- root/root .* ./etc/weir/weir.json$' "$tmp/listing" ||
  fail "/etc/weir/weir.json is not root-owned 0644"
ok "dpkg-deb -c: $(wc -l < "$tmp/files") entries, weir, unit, config, docs"

# --- install into a scratch root -----------------------------------------------------
# The maintainer scripts see DPKG_ROOT and leave the host's systemd alone.
r=$tmp/root
mkdir -p "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/info"
: > "$r/var/lib/dpkg/status"
dpkg --root="$r" --log=/dev/null --force-depends --force-script-chrootless -i "$deb" \
  > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i"; }
[[ "$(dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Status}' weir)" == "install ok installed" ]] ||
  fail "weir not installed in the scratch root"
dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Conffiles}' weir | grep -q "/etc/weir/weir.json" ||
  fail "dpkg did not register /etc/weir/weir.json as a conffile"
[[ -x "$r/usr/bin/weir" ]] || fail "no executable $r/usr/bin/weir"
grep -q '"path": "/var/lib/weir/weir.db"' "$r/etc/weir/weir.json" ||
  fail "shipped config does not keep its database in the StateDirectory"
"$r/usr/bin/weir" validate "$r/etc/weir/weir.json" > "$tmp/validate.log" 2>&1 ||
  { cat "$tmp/validate.log"; fail "the installed weir rejects the shipped config"; }
dpkg --root="$r" --log=/dev/null --force-script-chrootless --purge weir > "$tmp/purge.log" 2>&1 ||
  { cat "$tmp/purge.log"; fail "dpkg --purge"; }
[[ ! -e "$r/usr/bin/weir" && ! -e "$r/etc/weir/weir.json" ]] || fail "purge left files behind"
ok "dpkg -i / --purge in a scratch root; installed weir validates /etc/weir/weir.json"

# The real system: would apt accept the package with its Depends?
if command -v apt-get > /dev/null; then
  apt-get -s install "$deb" > "$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get -s install"; }
  ok "apt-get -s install: Depends satisfiable on this machine"
fi

# --- systemd unit --------------------------------------------------------------------
unit=$r/weir.service
dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/lib/systemd/system/weir.service > "$tmp/unit"
mkdir -p "$r/usr/bin"
dpkg-deb -x "$deb" "$r"
for key in 'Type=notify' 'Restart=on-failure' 'StateDirectory=weir' 'DynamicUser=yes' \
           'ProtectSystem=strict' 'NoNewPrivileges=yes' 'ExecReload=/bin/kill -HUP $MAINPID' \
           'ExecStart=/usr/bin/weir run /etc/weir/weir.json'; do
  grep -qxF "$key" "$tmp/unit" || fail "weir.service lacks '$key'"
done
grep -q '^MemoryMax=' "$tmp/unit" || fail "weir.service lacks MemoryMax"
if ! command -v systemd-analyze > /dev/null; then
  echo "SKIP: systemd-analyze not installed (apt-get install systemd); the rest passed"
  exit 77
fi
# verify checks that the commands exist: point them at the unpacked package.
sed "s#/usr/bin/weir#$r/usr/bin/weir#g" "$tmp/unit" > "$unit"
if ! systemd-analyze verify "$unit" > "$tmp/verify.log" 2>&1; then
  if grep -qE 'Failed to (initialize|connect|allocate) manager|Operation not permitted' "$tmp/verify.log"; then
    cat "$tmp/verify.log"
    echo "SKIP: systemd-analyze cannot run here; the rest passed"
    exit 77
  fi
  cat "$tmp/verify.log" >&2
  fail "systemd-analyze verify"
fi
# verify exits 0 on unknown keys and similar: any diagnostic counts as a failure.
if [[ -s "$tmp/verify.log" ]]; then
  cat "$tmp/verify.log" >&2
  fail "systemd-analyze verify printed diagnostics"
fi
ok "systemd-analyze verify weir.service"
