# Sourced by serve.sh and bootstrap.sh: the project's .venv and the stamps that say what was
# installed into it, so that a later start needs no package index.
#   venv_create            makes .venv with $PYTHON (default python3) when it is missing
#   venv_stamp NAME FILES  the hash of FILES (what the install of NAME depends on)
#   venv_current NAME H    true when .venv/.mmdshot-NAME holds H (NAME installed as wanted)
#   venv_mark NAME H       records it
venv_create() {
    if [ ! -x .venv/bin/python ]; then
        "${PYTHON:-python3}" -m venv .venv
    fi
}

venv_stamp() {
    stamp_name=$1
    shift
    cat "$@" | sha256sum | cut -d' ' -f1 | sed "s/^/$stamp_name-/"
}

venv_current() {
    [ -f ".venv/.mmdshot-$1" ] && [ "$(cat ".venv/.mmdshot-$1")" = "$2" ]
}

venv_mark() {
    echo "$2" >".venv/.mmdshot-$1"
}
