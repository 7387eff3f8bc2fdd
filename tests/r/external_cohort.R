# A cohort nobody in the Python code wrote: generated here in R, written as
# data-contract CSVs, and analysed here with base R and lme4. The Python test
# (tests/test_report_vs_r.py) imports the CSVs with `python -m lupus_dash
# import`, runs `report`, and compares every row with these numbers.
#
# Run from the repository root:  Rscript tests/r/external_cohort.R
# Writes tests/fixtures/r_cohort/{patients,visits}.csv and
#        tests/r/external_cohort_reference.json
suppressPackageStartupMessages({ library(jsonlite); library(lme4) })
set.seed(20261122)

out_dir <- "tests/fixtures/r_cohort"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

n <- 40
weeks <- c(0, 4, 12, 24, 52)
ids <- sprintf("R%03d", 1:n)
patients <- data.frame(
  patient_id = ids,
  cohort = "r_external",
  sex = sample(c("F", "M"), n, replace = TRUE, prob = c(0.8, 0.2)),
  age_at_baseline_years = round(runif(n, 18, 60), 1),
  biopsy_class = sample(c("III", "IV", "V", "IV+V", NA), n, replace = TRUE),
  immunosuppressant = sample(c("MMF", "AZA", "TAC"), n, replace = TRUE),
  organ_kidney = "true",
  stringsAsFactors = FALSE
)
pid <- rep(ids, each = length(weeks))
wk <- rep(weeks, times = n)
subj <- rep(rnorm(n, 0, 0.15), each = length(weeks))
t_eff <- c(0, 0.15, 0.22, 0.28, 0.30)[match(wk, weeks)]
visits <- data.frame(
  patient_id = pid,
  visit_week = wk,
  c3_g_l = round(pmax(0.1, 0.65 + subj + t_eff + rnorm(length(wk), 0, 0.12)), 2),
  c4_g_l = round(pmax(0.02, 0.11 + subj / 4 + t_eff / 5 + rnorm(length(wk), 0, 0.03)), 2),
  urine_protein_g_24h = round(rexp(length(wk), 1 / (1.5 - t_eff * 3)), 2),
  sledai2k = pmax(0, round(10 - t_eff * 25 + rnorm(length(wk), 0, 3))),
  pga = pmin(3, pmax(0, round((2 - t_eff * 4 + rnorm(length(wk), 0, 0.5)) * 2) / 2)),
  prednisone_mg_day = pmax(0, round((40 - t_eff * 110 + rnorm(length(wk), 0, 8)) / 2.5) * 2.5),
  anti_dsdna_positive = ifelse(runif(length(wk)) < (0.7 - t_eff * 1.2), "true", "false"),
  stringsAsFactors = FALSE
)
# Missing visits and values, as real exports have them.
drop <- sample(which(visits$visit_week > 0), 18)
visits <- visits[-drop, ]
visits$c3_g_l[sample(nrow(visits), 6)] <- NA
visits$pga[sample(nrow(visits), 5)] <- NA
write.csv(patients, file.path(out_dir, "patients.csv"), row.names = FALSE, na = "")
write.csv(visits, file.path(out_dir, "visits.csv"), row.names = FALSE, na = "")

# ---- reference numbers ------------------------------------------------------
v <- visits
v$anti_dsdna_positive <- v$anti_dsdna_positive == "true"
cont <- c("c3_g_l", "c4_g_l", "urine_protein_g_24h", "sledai2k", "pga", "prednisone_mg_day")
wide <- function(ep) {
  w <- reshape(v[, c("patient_id", "visit_week", ep)], idvar = "patient_id",
               timevar = "visit_week", direction = "wide")
  w <- w[match(ids, w$patient_id), ]
  m <- as.matrix(w[, paste0(ep, ".", weeks)])
  rownames(m) <- ids
  m
}
res <- list(summary = list(), longitudinal = list(), omnibus = list(), subgroups = list())
add <- function(section, row) res[[section]][[length(res[[section]]) + 1]] <<- row

for (ep in c(cont, "anti_dsdna_positive")) {
  m <- wide(ep)
  for (j in seq_along(weeks)) {
    x <- m[, j]; x <- x[!is.na(x)]
    if (ep == "anti_dsdna_positive") {
      add("summary", list(endpoint = ep, visit_week = weeks[j], n = length(x),
                          n_positive = sum(x), rate = mean(x)))
    } else {
      q <- quantile(x, c(0.25, 0.5, 0.75), type = 6, names = FALSE)  # SPSS quartiles
      add("summary", list(endpoint = ep, visit_week = weeks[j], n = length(x), mean = mean(x),
                          sd = sd(x), median = q[2], p25 = q[1], p75 = q[3]))
    }
  }
  for (cmp in c("baseline", "previous")) {
    for (j in 2:length(weeks)) {
      i <- if (cmp == "baseline") 1 else j - 1
      ok <- !is.na(m[, j]) & !is.na(m[, i])
      x <- m[ok, j]; y <- m[ok, i]
      if (ep == "anti_dsdna_positive") {
        b <- sum(x & !y); c <- sum(!x & y)
        p_mc <- if (b + c > 0) binom.test(b, b + c)$p.value else NA   # R: binom.test(b, b + c)
        add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                                 method = "mcnemar_exact", n = sum(ok), p_value = p_mc))
        tab <- matrix(c(sum(x), sum(!x), sum(y), sum(!y)), 2)
        add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                                 method = "fisher", n = sum(ok),
                                 p_value = fisher.test(tab)$p.value))   # R: fisher.test
        next
      }
      tt <- t.test(x, y, paired = TRUE)                                  # R: t.test paired
      add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                               method = "paired_t", n = sum(ok), statistic = unname(tt$statistic),
                               p_value = tt$p.value, mean_diff = unname(tt$estimate),
                               ci_low = tt$conf.int[1], ci_high = tt$conf.int[2]))
      d <- x - y
      if (any(d != 0)) {
        wt <- wilcox.test(x, y, paired = TRUE, exact = FALSE, correct = FALSE)
        nz <- sum(d != 0)
        z <- sign(unname(wt$statistic) - nz * (nz + 1) / 4) * qnorm(wt$p.value / 2, lower.tail = FALSE)
        add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                                 method = "wilcoxon", n = sum(ok), statistic = z,
                                 p_value = wt$p.value, V = unname(wt$statistic)))
      }
      # SPSS pairwise comparisons after RM ANOVA: complete cases, Bonferroni over 10 pairs.
      cc <- m[complete.cases(m), ]
      mm <- choose(length(weeks), 2)
      tb <- t.test(cc[, j], cc[, i], paired = TRUE, conf.level = 1 - 0.05 / mm)
      add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                               method = "rm_anova_bonferroni", n = nrow(cc),
                               p_value = min(1, tb$p.value * mm), mean_diff = unname(tb$estimate),
                               ci_low = tb$conf.int[1], ci_high = tb$conf.int[2]))
    }
  }
  if (ep == "anti_dsdna_positive") next
  cc <- m[complete.cases(m), ]
  fr <- friedman.test(cc)                                                # R: friedman.test
  add("omnibus", list(endpoint = ep, method = "friedman", n = nrow(cc),
                      statistic = unname(fr$statistic), p_value = fr$p.value))
  long <- data.frame(value = as.vector(t(cc)), visit = factor(rep(weeks, nrow(cc))),
                     patient = factor(rep(rownames(cc), each = length(weeks))))
  av <- summary(aov(value ~ visit + Error(patient / visit), data = long))  # R: aov Error()
  tab <- av[["Error: patient:visit"]][[1]]
  add("omnibus", list(endpoint = ep, method = "rm_anova", n = nrow(cc),
                      statistic = tab[["F value"]][1], p_value = tab[["Pr(>F)"]][1]))
  # Mixed model: every available observation, REML.               R: lme4::lmer
  lv <- v[!is.na(v[[ep]]), c("patient_id", "visit_week", ep)]
  names(lv) <- c("patient", "visit", "value")
  lv$visit <- factor(lv$visit, levels = weeks)
  fit <- lmer(value ~ visit + (1 | patient), data = lv, REML = TRUE)
  co <- summary(fit)$coefficients
  for (j in 2:length(weeks)) {
    nm <- paste0("visit", weeks[j])
    est <- co[nm, "Estimate"]; se <- co[nm, "Std. Error"]
    add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = "baseline",
                             method = "mixed_model", n = length(unique(lv$patient)),
                             mean_diff = est, ci_low = est - qnorm(0.975) * se,
                             ci_high = est + qnorm(0.975) * se))
  }
}

# Between-group tests per visit, grouped by sex (2 groups) and immunosuppressant (3).
pv <- merge(v, patients[, c("patient_id", "sex", "immunosuppressant")], by = "patient_id")
for (ep in cont) {
  for (w in weeks) {
    d <- pv[pv$visit_week == w & !is.na(pv[[ep]]), ]
    mw <- wilcox.test(d[[ep]] ~ d$sex, exact = FALSE, correct = TRUE)   # R: wilcox.test(x ~ g)
    add("subgroups", list(endpoint = ep, visit_week = w, group_by = "sex", method = "mann_whitney",
                          statistic = unname(mw$statistic), p_value = mw$p.value))
    wt <- t.test(d[[ep]] ~ d$sex)                                         # R: t.test(x ~ g)
    add("subgroups", list(endpoint = ep, visit_week = w, group_by = "sex", method = "welch_t",
                          statistic = unname(wt$statistic), p_value = wt$p.value))
    kw <- kruskal.test(d[[ep]] ~ factor(d$immunosuppressant))             # R: kruskal.test
    add("subgroups", list(endpoint = ep, visit_week = w, group_by = "immunosuppressant",
                          method = "kruskal", statistic = unname(kw$statistic),
                          p_value = kw$p.value))
  }
}
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/r/external_cohort_reference.json")
cat("wrote", out_dir, "and tests/r/external_cohort_reference.json\n")
