package dmsnap.device;

/**
 * What {@code dmsetup info} prints for a device.
 *
 * @param suspended     SUSPENDED rather than ACTIVE
 * @param readOnly      the live table is read-only ("(READ-ONLY)" after the state, as dmsetup prints it)
 * @param liveTable     a live table is present
 * @param inactiveTable an inactive table is present
 * @param cacheMode     the live table's cache mode (null without one); dmsnap's, not printed by
 *                      {@link #dmsetupText()}
 */
public record DeviceInfo(
        String name,
        String uuid,
        boolean suspended,
        boolean readOnly,
        boolean liveTable,
        boolean inactiveTable,
        int openCount,
        long eventNumber,
        int major,
        int minor,
        int targets,
        dmsnap.target.CacheMode cacheMode) {

    /** "LIVE & INACTIVE", "LIVE", "INACTIVE" or "None". */
    public String tablesPresent() {
        if (liveTable && inactiveTable) {
            return "LIVE & INACTIVE";
        }
        return liveTable ? "LIVE" : inactiveTable ? "INACTIVE" : "None";
    }

    /** The dmsetup info block, one field per line, as dmsetup aligns it. */
    public String dmsetupText() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("Name:              %s%n", name));
        sb.append(String.format(
                "State:             %s%s%n", suspended ? "SUSPENDED" : "ACTIVE", readOnly ? " (READ-ONLY)" : ""));
        sb.append(String.format("Read Ahead:        %d%n", 256));
        sb.append(String.format("Tables present:    %s%n", tablesPresent()));
        sb.append(String.format("Open count:        %d%n", openCount));
        sb.append(String.format("Event number:      %d%n", eventNumber));
        sb.append(String.format("Major, minor:      %d, %d%n", major, minor));
        if (liveTable) {
            sb.append(String.format("Number of targets: %d%n", targets));
        }
        if (uuid != null && !uuid.isEmpty()) {
            sb.append(String.format("UUID: %s%n", uuid));
        }
        return sb.toString();
    }
}
