package dmsnap.target;

import dmsnap.table.TableLoadException;
import java.util.Map;
import java.util.TreeMap;

/** The registry of target types by name ({@code dm_get_target_type}). */
public final class TargetTypes {
    private final Map<String, TargetType> types = new TreeMap<>();

    /** The simple targets; the snapshot targets are registered by their package. */
    public static TargetTypes withBasicTargets() {
        TargetTypes t = new TargetTypes();
        t.register(LinearTarget.TYPE);
        t.register(ZeroTarget.TYPE);
        t.register(ErrorTarget.TYPE);
        return t;
    }

    public synchronized void register(TargetType type) {
        types.put(type.name(), type);
    }

    public synchronized TargetType get(String name) throws TableLoadException {
        TargetType type = types.get(name);
        if (type == null) {
            throw new TableLoadException(name, "unknown target type");
        }
        return type;
    }

    /** name → version, sorted, as {@code dmsetup targets}. */
    public synchronized Map<String, String> versions() {
        Map<String, String> v = new TreeMap<>();
        types.forEach((name, type) -> v.put(name, type.version()));
        return v;
    }
}
