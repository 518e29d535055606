#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/gen-pki.sh DIR: the test PKI, made with openssl at test time.
#
#   ca.pem, ca.key            "socknet test CA" (RSA)
#   ca2.pem, ca2.key          another CA, trusted by nobody
#   server-rsa.{pem,key}      CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (RSA, by ca)
#   server-ec.{pem,key}       the same with an ECDSA P-256 key
#   server-enc.key            server-rsa.key encrypted (PKCS#8, AES-256), password "secret"
#   server-other.{pem,key}    SAN DNS:other.test, DNS:*.other.test (for SNI)
#   server-wrong.{pem,key}    CN and SAN wrong.example (a host name mismatch)
#   client-rsa.{pem,key}      CN=client-rsa, clientAuth (by ca)
#   client-ec.{pem,key}       CN=client-ec, ECDSA (by ca)
#   client-ca2.{pem,key}      signed by ca2
#   client-expired.{pem,key}  by ca, valid 2020-01-01 .. 2021-01-01
#   server-chain.pem          server-rsa.pem followed by nothing else (the CA
#                             signs directly; kept for the chain getters)
# Idempotent: does nothing when DIR/done exists. Writes to a temporary
# directory and renames it, so concurrent runs do not see half a PKI.
set -eu
dir=${1:?usage: gen-pki.sh DIR}
[ -f "$dir/done" ] && exit 0
tmp=$(mktemp -d "${dir}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name CN
    rsa "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/O=socknet tests/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem" 2>/dev/null
}

# leaf NAME KEYTYPE CA CN EXT [extra x509 args...]
leaf() {
    name=$1 kt=$2 signer=$3 cn=$4 ext=$5
    shift 5
    $kt "$name.key"
    openssl req -new -key "$name.key" -subj "/O=socknet tests/CN=$cn" -out "$name.csr" 2>/dev/null
    printf '%s\n' "$ext" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA "$signer.pem" -CAkey "$signer.key" -CAcreateserial \
        -sha256 -days 825 -extfile "$name.ext" -out "$name.pem" "$@" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'

ca ca "socknet test CA"
ca ca2 "socknet other CA"
leaf server-rsa rsa ca localhost "$server_ext"
leaf server-ec ec ca localhost "$server_ext"
leaf server-other rsa ca other.test "$(printf '%s\n' "$server_ext" | sed 's/^subjectAltName=.*/subjectAltName=DNS:other.test,DNS:*.other.test/')"
leaf server-wrong rsa ca wrong.example "$(printf '%s\n' "$server_ext" | sed 's/^subjectAltName=.*/subjectAltName=DNS:wrong.example/')"
leaf client-rsa rsa ca client-rsa "$client_ext"
leaf client-ec ec ca client-ec "$client_ext"
leaf client-ca2 rsa ca2 client-ca2 "$client_ext"
openssl pkey -in server-rsa.key -aes256 -passout pass:secret -out server-enc.key

# An expired certificate: `openssl ca` is the one command of OpenSSL 3.0
# that takes explicit validity dates.
rsa client-expired.key
openssl req -new -key client-expired.key -subj "/O=socknet tests/CN=client-expired" \
    -out client-expired.csr 2>/dev/null
mkdir -p db && : >db/index.txt && echo 1000 >db/serial
cat >db/ca.cnf <<EOF
[ca]
default_ca = test
[test]
dir = db
database = db/index.txt
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = ext
[anything]
commonName = supplied
organizationName = optional
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
openssl ca -batch -config db/ca.cnf -cert ca.pem -keyfile ca.key -in client-expired.csr \
    -startdate 20200101000000Z -enddate 20210101000000Z -out client-expired.pem 2>/dev/null
rm -rf db client-expired.csr ca.srl ca2.srl
cp server-rsa.pem server-chain.pem
touch done
cd - >/dev/null
rm -rf "$dir"
mv "$tmp" "$dir" 2>/dev/null || true # a concurrent run may have won
trap - EXIT
rm -rf "$tmp"
[ -f "$dir/done" ]
