# Reference numbers for tests/test_comparisons.py: Holm and Benjamini-Hochberg
# adjustment across a session's comparison log, with base R's p.adjust.
# Run from the repository root:  Rscript tests/r/padjust_reference.R
# Writes tests/r/padjust_reference.json. Each log is a vector of raw p in the
# order the comparisons were first displayed; NA = a test shown as not computable
# (p.adjust's default n = sum(!is.na(p)) leaves it out of the count).
suppressPackageStartupMessages(library(jsonlite))

logs <- list(
  # 20 comparisons: ties (0.012, 0.049), values at and around alpha, p = 1.
  session = c(0.0003, 0.012, 0.012, 0.049, 0.05, 0.051, 0.2, 0.74, 1, 0.0001,
              0.03, 0.0081, 0.33, 0.5, 0.049, 0.9, 0.002, 0.04, 0.06, 0.15),
  # Two tests that could not be computed among six.
  with_missing = c(0.01, NA, 0.04, 0.03, NA, 0.2)
)
alpha <- 0.05
out <- list(r_version = R.version.string, alpha = alpha, logs = list())
for (name in names(logs)) {
  p <- logs[[name]]
  holm <- p.adjust(p, method = "holm")
  bh <- p.adjust(p, method = "BH")
  tested <- !is.na(p)
  out$logs[[name]] <- list(
    p = p,
    holm = holm,                                   # p.adjust(p, "holm")
    bh = bh,                                       # p.adjust(p, "BH")
    m = sum(tested),
    expected_by_chance = sum(tested) * alpha,      # m x alpha
    p_below_alpha = sum(p[tested] < alpha),
    holm_below_alpha = sum(holm[tested] < alpha),
    bh_below_alpha = sum(bh[tested] < alpha)
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/r/padjust_reference.json")
cat("wrote tests/r/padjust_reference.json\n")
