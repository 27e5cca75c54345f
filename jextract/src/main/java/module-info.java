/** Raw jextract-generated bindings (constants, struct layouts, function descriptors); only dmsnap.ffm may use them. */
module dmsnap.jextract {
    exports dmsnap.jextract.linux to
            dmsnap.ffm;
}
