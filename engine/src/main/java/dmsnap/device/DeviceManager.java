package dmsnap.device;

import dmsnap.ffm.Errno;
import dmsnap.table.Table;
import dmsnap.table.TableLoadException;
import dmsnap.target.CacheMode;
import dmsnap.target.TargetTypes;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The set of mapped devices by name ({@code dm-ioctl.c}'s name hash), with the dmsetup verbs.
 * Minors are allocated lowest-free under major {@value #DM_MAJOR}, as the kernel does. Locks:
 * this object's monitor serialises changes of the name map and guards minors; it is taken before
 * a device's control lock, never after. Lookups ({@link #find}, {@link #get}) take no lock: a
 * table load resolves {@code dm:NAME} under its device's control lock, while a rename of that
 * device may hold this monitor waiting for the same control lock.
 */
public final class DeviceManager {
    private static final Logger log = LoggerFactory.getLogger(DeviceManager.class);
    public static final int DM_MAJOR = 253;
    /** DM_NAME_LEN - 1. */
    public static final int MAX_NAME_BYTES = 127;

    private final TargetTypes types;
    private final BackingDevices devices;
    /** Changed under this object's monitor; read without it by {@link #find} (sorted, as the kernel lists). */
    private final Map<String, MappedDevice> byName = new ConcurrentSkipListMap<>();

    private final BitSet minors = new BitSet();
    /** The mode of a device's first table when its load names none. */
    private final CacheMode defaultCacheMode;

    /** A device manager whose tables follow the kernel's rule unless a load says otherwise ({@link CacheMode#DIRECTSYNC}). */
    public DeviceManager(TargetTypes types, BackingDevices devices) {
        this(types, devices, CacheMode.DIRECTSYNC);
    }

    /** The same, a device's first table in {@code defaultCacheMode} unless its load names one (the daemon's {@code --cache}). */
    public DeviceManager(TargetTypes types, BackingDevices devices, CacheMode defaultCacheMode) {
        this.types = types;
        this.devices = devices;
        this.defaultCacheMode = java.util.Objects.requireNonNull(defaultCacheMode, "defaultCacheMode");
        devices.useMappedDevices(this::find);
    }

    /** The mode of a device's first table when its load names none. */
    public CacheMode defaultCacheMode() {
        return defaultCacheMode;
    }

    public TargetTypes targetTypes() {
        return types;
    }

    public BackingDevices backingDevices() {
        return devices;
    }

    /**
     * The dm name rules: not empty, at most 127 bytes, no '/', not "." or "..". And text that can
     * be saved and shown: valid Unicode (no unpaired surrogate, which has no UTF-8 form) without
     * control characters.
     */
    public static void checkName(String name) throws DmException {
        if (name == null
                || name.isEmpty()
                || name.equals(".")
                || name.equals("..")
                || name.indexOf('/') >= 0
                || !isPrintableText(name)) {
            throw new DmException(Errno.EINVAL, "Invalid device name '" + (name == null ? "" : quoted(name)) + "'");
        }
        if (name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_NAME_BYTES) {
            throw new DmException(Errno.EINVAL, "Device name too long (at most " + MAX_NAME_BYTES + " bytes)");
        }
    }

    /** A uuid is saved and shown like a name: valid Unicode without control characters. */
    static void checkUuid(String uuid) throws DmException {
        if (uuid != null && !isPrintableText(uuid)) {
            throw new DmException(Errno.EINVAL, "Invalid uuid '" + quoted(uuid) + "'");
        }
    }

    private static boolean isPrintableText(String s) {
        return s.codePoints().noneMatch(c -> Character.isISOControl(c) || isSurrogate(c));
    }

    /** codePoints() yields an unpaired surrogate as itself; a pair becomes one supplementary code point. */
    private static boolean isSurrogate(int codePoint) {
        return codePoint >= Character.MIN_SURROGATE && codePoint <= Character.MAX_SURROGATE;
    }

    /** At most this many characters of a name are quoted in a message. */
    private static final int QUOTED_CHARS = 200;

    /** A name as an error quotes it: {@link #printable} and cut short (a request may carry 10 000 characters). */
    public static String quoted(String name) {
        String p = printable(name);
        return p.length() <= QUOTED_CHARS ? p : p.substring(0, QUOTED_CHARS) + "...";
    }

    /** {@code s} for a one-line message: control characters and unpaired surrogates as backslash-u escapes. */
    public static String printable(String s) {
        StringBuilder b = new StringBuilder(s.length());
        s.codePoints().forEach(c -> {
            if (Character.isISOControl(c) || isSurrogate(c)) {
                b.append(String.format("\\u%04x", c));
            } else {
                b.appendCodePoint(c);
            }
        });
        return b.toString();
    }

    /**
     * Creates a device; with a table also loads and resumes it (dmsetup create), and on a load
     * failure removes the device again, leaving nothing behind.
     */
    public MappedDevice create(String name, String uuid, Table table)
            throws DmException, TableLoadException, InterruptedException {
        return create(name, uuid, table, false);
    }

    /** The same, the table read-only when {@code readOnly} ({@code dmsetup create --readonly}). */
    public MappedDevice create(String name, String uuid, Table table, boolean readOnly)
            throws DmException, TableLoadException, InterruptedException {
        return create(name, uuid, table, readOnly, null);
    }

    /** The same, the table in {@code cacheMode} (null: the default mode). */
    public MappedDevice create(String name, String uuid, Table table, boolean readOnly, CacheMode cacheMode)
            throws DmException, TableLoadException, InterruptedException {
        checkName(name);
        checkUuid(uuid);
        MappedDevice device;
        synchronized (this) {
            if (byName.containsKey(name)) {
                throw new DmException(Errno.EBUSY, "Device " + name + " already exists");
            }
            if (uuid != null && !uuid.isEmpty() && byName.values().stream().anyMatch(d -> uuid.equals(d.uuid()))) {
                throw new DmException(Errno.EBUSY, "A device with uuid " + uuid + " already exists");
            }
            int minor = minors.nextClearBit(0);
            minors.set(minor);
            device = new MappedDevice(name, uuid, DM_MAJOR, minor);
            byName.put(name, device);
        }
        log.info("{}: created ({}:{})", name, DM_MAJOR, device.minor());
        if (table != null) {
            try {
                device.load(table, types, devices, readOnly, cacheMode != null ? cacheMode : defaultCacheMode);
                device.resume();
            } catch (TableLoadException | DmException | InterruptedException e) {
                forget(device);
                throw e;
            }
        }
        return device;
    }

    public MappedDevice get(String name) throws DmException {
        MappedDevice device = byName.get(name);
        if (device == null) {
            throw new DmException(Errno.ENXIO, "Device " + quoted(name) + " not found");
        }
        return device;
    }

    /**
     * The device named {@code name}, or null. Takes no lock: a table load resolves
     * {@code dm:NAME} with it under its device's control lock, which comes after this object's
     * monitor in the lock order (a rename holds the monitor while it takes control locks).
     */
    public MappedDevice find(String name) {
        return byName.get(name);
    }

    public void load(String name, Table table) throws DmException, TableLoadException {
        load(name, table, false);
    }

    /** {@code dmsetup load [--readonly]}. */
    public void load(String name, Table table, boolean readOnly) throws DmException, TableLoadException {
        load(name, table, readOnly, null);
    }

    /**
     * {@code dmsnap load [--readonly] [--cache MODE]}: the table in {@code cacheMode}; null keeps
     * the device's mode, or gives a device without a table the default one.
     */
    public void load(String name, Table table, boolean readOnly, CacheMode cacheMode)
            throws DmException, TableLoadException {
        MappedDevice device = get(name);
        CacheMode mode = cacheMode;
        if (mode == null) {
            CacheMode current = device.cacheMode();
            mode = current != null ? current : defaultCacheMode;
        }
        device.load(table, types, devices, readOnly, mode);
    }

    public void remove(String name, boolean force) throws DmException {
        remove(name, force, DeviceRecorder.NONE);
    }

    /** The same, once {@code recorder} has recorded the removal (nothing changes when it cannot). */
    public void remove(String name, boolean force, DeviceRecorder recorder) throws DmException {
        MappedDevice device = get(name);
        device.remove(force, recorder);
        // By its name now: a rename may have come between the lookup above and the removal.
        String removedAs = device.name();
        synchronized (this) {
            byName.remove(removedAs, device);
            minors.clear(device.minor());
        }
        log.info("{}: removed", removedAs);
    }

    private void forget(MappedDevice device) {
        try {
            device.remove(true, DeviceRecorder.NONE);
        } catch (DmException e) {
            throw new IllegalStateException("a forced remove cannot fail", e);
        }
        synchronized (this) {
            byName.remove(device.name(), device);
            minors.clear(device.minor());
        }
    }

    public void rename(String from, String to) throws DmException {
        rename(from, to, DeviceRecorder.NONE);
    }

    /**
     * The same, once {@code recorder} has recorded the new name (nothing changes when it cannot).
     * The devices whose tables name it ({@code dm:FROM}) name it {@code dm:TO} afterwards, their
     * live tables recorded in the same step: the kernel's tables hold a device by its number, so
     * a rename never breaks the devices stacked on it, nor should it break their restore.
     */
    public synchronized void rename(String from, String to, DeviceRecorder recorder) throws DmException {
        checkName(to);
        MappedDevice device = get(from);
        if (byName.containsKey(to)) {
            throw new DmException(Errno.EBUSY, "Device " + to + " already exists");
        }
        String oldArgument = BackingDevices.mappedArgument(from);
        String newArgument = BackingDevices.mappedArgument(to);
        List<MappedDevice> users = new ArrayList<>();
        List<DeviceRecorder.Dependent> dependents = new ArrayList<>();
        for (MappedDevice d : byName.values()) {
            if (d != device && d.tablesHaveArgument(oldArgument)) {
                users.add(d);
                Table live = d.liveTable();
                if (live != null && live.hasArgument(oldArgument)) {
                    dependents.add(new DeviceRecorder.Dependent(d, live.replacingArgument(oldArgument, newArgument)));
                }
            }
        }
        device.rename(to, recorder, dependents);
        byName.remove(from);
        byName.put(to, device);
        for (MappedDevice d : users) {
            d.replaceDeviceArgument(oldArgument, newArgument);
        }
        log.info(
                "{}: renamed to {}{}",
                from,
                to,
                users.isEmpty()
                        ? ""
                        : " (the tables of "
                                + String.join(
                                        ", ",
                                        users.stream().map(MappedDevice::name).toList()) + " now name " + newArgument
                                + ")");
    }

    /** Every device, by name. */
    public List<MappedDevice> list() {
        return new ArrayList<>(byName.values());
    }
}
