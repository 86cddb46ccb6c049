// A small driver over JavaRosa (the engine of ODK Collect, shipped in pyxform's ODK_Validate.jar) for migkit's
// differential tests and benchmark. It loads each saved instance into the form the way Collect does when it opens
// a saved form (populate the template, then initialize without a new instance: every calculation, relevance and
// required condition is recomputed from the answers) and prints, per node of the main instance:
//   path <TAB> relevant(1/0) <TAB> required(1/0) <TAB> constraint(1 ok / 0 violated / - none or empty) <TAB> value
//   <TAB> choices (for a select with an itemset: 1 every chosen value is among the choices its filter offers here,
//   0 one is not, E the itemset fails; - otherwise)
// where path has 1-based indexes on repeat instances only (/data/hl[2]/age) and value is the serialized answer.
//
// Usage: java -cp ODK_Validate.jar:. JrCheck check FORM.xml INSTANCE.xml...
//        java -cp ODK_Validate.jar:. JrCheck bench FORM.xml ROUNDS INSTANCE.xml...   (prints instances/s)
import java.io.FileInputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.javarosa.core.model.FormDef;
import org.javarosa.core.model.QuestionDef;
import org.javarosa.core.model.SelectChoice;
import org.javarosa.core.model.condition.EvaluationContext;
import org.javarosa.core.model.condition.IFunctionHandler;
import org.javarosa.xpath.expr.XPathFuncExpr;
import org.javarosa.model.xform.XFormsModule;
import org.javarosa.core.model.data.IAnswerData;
import org.javarosa.core.model.instance.FormInstance;
import org.javarosa.core.model.instance.InstanceInitializationFactory;
import org.javarosa.core.model.instance.TreeElement;
import org.javarosa.xform.parse.XFormParser;
import org.javarosa.xform.util.XFormAnswerDataSerializer;
import org.javarosa.xform.util.XFormUtils;

public class JrCheck {
    private static final XFormAnswerDataSerializer SERIALIZER = new XFormAnswerDataSerializer();

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        new XFormsModule().registerModule();
        FormDef fd;
        try (FileInputStream in = new FileInputStream(args[1])) {
            fd = XFormUtils.getFormFromInputStream(in);
        }
        // pulldata() is ODK Collect's, not JavaRosa's: the same lookup over the CSV attachments in -Dmedia=DIR.
        fd.getEvaluationContext().addFunctionHandler(new PullData(System.getProperty("media", ".")));
        TreeElement pristine = fd.getMainInstance().getRoot().deepCopy(true);
        PrintStream out = new PrintStream(System.out, false, "UTF-8");
        if (mode.equals("check")) {
            for (int i = 2; i < args.length; i++) {
                byte[] bytes = Files.readAllBytes(Paths.get(args[i]));
                out.println("#INSTANCE\t" + args[i]);
                try {
                    TreeElement root = load(fd, pristine, bytes);
                    StringBuilder sb = new StringBuilder();
                    walk(fd, root, "/" + root.getName(), sb);
                    out.print(sb);
                } catch (Throwable e) {
                    out.println("#ERROR\t" + oneLine(String.valueOf(e)));
                }
            }
        } else if (mode.equals("bench")) {
            int rounds = Integer.parseInt(args[2]);
            List<byte[]> instances = new ArrayList<>();
            for (int i = 3; i < args.length; i++) instances.add(Files.readAllBytes(Paths.get(args[i])));
            long checksum = 0;
            // warm-up round (JIT), not timed
            for (byte[] b : instances) checksum += check(fd, pristine, b);
            long t0 = System.nanoTime();
            int n = 0;
            for (int r = 0; r < rounds; r++) {
                for (byte[] b : instances) { checksum += check(fd, pristine, b); n++; }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            out.println("instances\t" + n);
            out.println("seconds\t" + seconds);
            out.println("instances_per_second\t" + (n / seconds));
            out.println("checksum\t" + checksum);
        }
        out.flush();
    }

    static TreeElement load(FormDef fd, TreeElement pristine, byte[] bytes) {
        FormInstance saved = XFormParser.restoreDataModel(bytes, null);
        TreeElement savedRoot = saved.getRoot();
        TreeElement templateRoot = pristine.deepCopy(true);
        templateRoot.populate(savedRoot, fd);
        fd.getMainInstance().setRoot(templateRoot);
        fd.initialize(false, new InstanceInitializationFactory());
        return fd.getMainInstance().getRoot();
    }

    // The same verdicts as `check`, counted instead of printed (for the benchmark).
    static int check(FormDef fd, TreeElement pristine, byte[] bytes) {
        TreeElement root = load(fd, pristine, bytes);
        return count(fd, root);
    }

    static int count(FormDef fd, TreeElement e) {
        int bad = 0;
        for (int i = 0; i < e.getNumChildren(); i++) {
            TreeElement c = e.getChildAt(i);
            if (c.getMult() < 0) continue;
            IAnswerData v = c.getValue();
            boolean rel = c.isRelevant();
            if (rel && c.isRequired() && v == null && c.getNumChildren() == 0) bad++;
            if (rel && v != null && c.getConstraint() != null && !fd.evaluateConstraint(c.getRef(), v)) bad++;
            if (!rel && v != null) bad++;
            bad += count(fd, c);
        }
        return bad;
    }

    static void walk(FormDef fd, TreeElement e, String path, StringBuilder sb) {
        for (int i = 0; i < e.getNumChildren(); i++) {
            TreeElement c = e.getChildAt(i);
            if (c.getMult() < 0) continue; // repeat templates
            String p = path + "/" + c.getName() + (c.isRepeatable() ? "[" + (c.getMult() + 1) + "]" : "");
            IAnswerData v = c.getValue();
            String cons = "-";
            if (v != null && c.getConstraint() != null) {
                try {
                    cons = fd.evaluateConstraint(c.getRef(), v) ? "1" : "0";
                } catch (Throwable t) {
                    cons = "E";
                }
            }
            String value = v == null ? "" : String.valueOf(SERIALIZER.serializeAnswerData(v));
            sb.append(p).append('\t').append(c.isRelevant() ? "1" : "0").append('\t')
              .append(c.isRequired() ? "1" : "0").append('\t').append(cons).append('\t')
              .append(oneLine(value)).append('\t').append(inItemset(fd, c, value)).append('\n');
            walk(fd, c, p, sb);
        }
    }

    /** Whether every value of a select answer is among the choices its itemset (choice_filter) offers here. */
    static String inItemset(FormDef fd, TreeElement c, String value) {
        if (value.isEmpty()) return "-";
        QuestionDef q = FormDef.findQuestionByRef(c.getRef().genericize(), fd);
        if (q == null || q.getDynamicChoices() == null) return "-";
        try {
            java.util.Set<String> offered = new java.util.HashSet<>();
            for (SelectChoice choice : q.getDynamicChoices().getChoices(fd, c.getRef())) offered.add(choice.getValue());
            for (String token : value.trim().split("\\s+")) {
                if (!offered.contains(token)) return "0";
            }
            return "1";
        } catch (Throwable t) {
            return "E";
        }
    }

    /** pulldata('file', 'column', 'key column', key): the first CSV row whose key column equals key. */
    static class PullData implements IFunctionHandler {
        private final String media;
        private final Map<String, List<Map<String, String>>> files = new HashMap<>();

        PullData(String media) { this.media = media; }

        public String getName() { return "pulldata"; }

        public List<Class[]> getPrototypes() { return new ArrayList<>(); }

        public boolean rawArgs() { return true; }

        public boolean realTime() { return false; }

        public Object eval(Object[] args, EvaluationContext ec) {
            String name = XPathFuncExpr.toString(args[0]);
            String column = XPathFuncExpr.toString(args[1]);
            String keyColumn = XPathFuncExpr.toString(args[2]);
            String key = XPathFuncExpr.toString(args[3]);
            for (Map<String, String> row : rows(name.endsWith(".csv") ? name : name + ".csv")) {
                if (key.equals(row.get(keyColumn))) {
                    String v = row.get(column);
                    return v == null ? "" : v;
                }
            }
            return "";
        }

        private List<Map<String, String>> rows(String file) {
            return files.computeIfAbsent(file, f -> {
                List<Map<String, String>> out = new ArrayList<>();
                try {
                    List<String> lines = Files.readAllLines(new File(media, f).toPath(), StandardCharsets.UTF_8);
                    if (lines.isEmpty()) return out;
                    List<String> header = split(lines.get(0).replace("\uFEFF", ""));
                    for (String line : lines.subList(1, lines.size())) {
                        List<String> cells = split(line);
                        Map<String, String> row = new HashMap<>();
                        for (int i = 0; i < header.size(); i++) row.put(header.get(i).trim(), i < cells.size() ? cells.get(i) : "");
                        out.add(row);
                    }
                } catch (Exception e) {
                    throw new RuntimeException("pulldata: cannot read " + f + ": " + e);
                }
                return out;
            });
        }

        private static List<String> split(String line) {
            List<String> cells = new ArrayList<>();
            StringBuilder cell = new StringBuilder();
            boolean quoted = false;
            for (int i = 0; i < line.length(); i++) {
                char c = line.charAt(i);
                if (quoted) {
                    if (c == '"' && i + 1 < line.length() && line.charAt(i + 1) == '"') { cell.append('"'); i++; }
                    else if (c == '"') quoted = false;
                    else cell.append(c);
                } else if (c == '"') quoted = true;
                else if (c == ',') { cells.add(cell.toString()); cell.setLength(0); }
                else cell.append(c);
            }
            cells.add(cell.toString());
            return cells;
        }
    }

    static String oneLine(String s) {
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r");
    }
}
