# Reference numbers for tests/test_stats.py, computed with base R, lme4, lmerTest, coin
# and survival. Differences are rounded to 10 decimals before any ranking, as
# lupus_dash.stats does (RANK_DECIMALS): 0.73 - 0.65 ties with 0.08.
# Run from the repository root:  Rscript tests/r/stats_reference.R
# Reads tests/r/stats_fixture.csv (written by tests/r/make_fixture.py) and writes
# tests/r/stats_reference.json. Every block names the R call the test compares with.
suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(lmerTest)
  library(coin)
  library(survival)
})
d <- read.csv("tests/r/stats_fixture.csv", stringsAsFactors = FALSE)
weeks <- c(0, 4, 12, 24, 52)
wide <- function(col) {
  w <- reshape(d[, c("patient", "visit_week", col)], idvar = "patient",
               timevar = "visit_week", direction = "wide")
  w <- w[order(w$patient), ]
  m <- as.matrix(w[, paste0(col, ".", weeks)])
  rownames(m) <- w$patient
  m
}
W <- list(value = wide("value"), score = wide("score"), positive = wide("positive"))
at <- function(col, wk) W[[col]][, as.character(match(wk, weeks))]
col_at <- function(col, wk) W[[col]][, match(wk, weeks)]
out <- list(r_version = R.version.string,
            lme4_version = as.character(packageVersion("lme4")),
            lmerTest_version = as.character(packageVersion("lmerTest")),
            coin_version = as.character(packageVersion("coin")),
            survival_version = as.character(packageVersion("survival")))

walsh_median <- function(x) {  # textbook HL pseudo-median of x
  s <- outer(x, x, "+") / 2
  median(s[upper.tri(s, diag = TRUE)])
}

# ---- paired tests: follow-up x vs comparator y, available pairs
paired <- list()
for (spec in list(c("value", 52, 0), c("value", 4, 0), c("score", 24, 0), c("score", 4, 0))) {
  col <- spec[1]; fu <- as.numeric(spec[2]); cmp <- as.numeric(spec[3])
  x <- col_at(col, fu); y <- col_at(col, cmp)
  ok <- !is.na(x) & !is.na(y); x <- x[ok]; y <- y[ok]
  tt <- t.test(x, y, paired = TRUE)                                   # R: t.test(x, y, paired=TRUE)
  dd <- round(x - y, 10); nz <- dd[dd != 0]
  # = wilcox.test(x, y, paired = TRUE, ...) on the rounded differences
  wt <- suppressWarnings(wilcox.test(dd, exact = FALSE, correct = FALSE,
                                     conf.int = TRUE, tol.root = 1e-12))
  # exact conditional p: coin::wilcoxsign_test(d ~ 0, exact, zero.method = "Wilcoxon")
  p_exact <- pvalue(wilcoxsign_test(dd ~ rep(0, length(dd)), distribution = "exact",
                                    zero.method = "Wilcoxon"))
  # SPSS Z from R's V: (V - n(n+1)/4) / sigma, tie-corrected, zeros dropped
  r <- rank(abs(nz)); nt <- table(r); m <- length(nz)
  z <- (wt$statistic - m * (m + 1) / 4) / sqrt(m * (m + 1) * (2 * m + 1) / 24 - sum(nt^3 - nt) / 48)
  paired[[paste(col, fu, cmp, sep = "_")]] <- list(
    n = length(x), t = unname(tt$statistic), df = unname(tt$parameter), p_t = tt$p.value,
    mean_diff = unname(tt$estimate), ci_low = tt$conf.int[1], ci_high = tt$conf.int[2],
    dz = mean(dd) / sd(dd),
    V = unname(wt$statistic), p_w = wt$p.value, p_exact = p_exact, z = unname(z),
    n_nonzero = m, any_ties_or_zeros = any(duplicated(abs(nz))) || m < length(dd),
    hl_estimate_uniroot = unname(wt$estimate), hl_walsh_median = walsh_median(nz),
    hl_ci_low = wt$conf.int[1], hl_ci_high = wt$conf.int[2],
    hl_conf_level = attr(wt$conf.int, "conf.level"))
}
out$paired <- paired

# ---- exact McNemar and Fisher on visits x positive (available pairs)
bin <- list()
for (fu in c(52, 4)) {
  x <- col_at("positive", fu); y <- col_at("positive", 0)
  ok <- !is.na(x) & !is.na(y); x <- x[ok]; y <- y[ok]
  b <- sum(y == 1 & x == 0); cc <- sum(y == 0 & x == 1)
  bt <- binom.test(b, b + cc)                                         # R: binom.test(b, b + c)
  tab <- matrix(c(sum(x == 1), sum(y == 1), sum(x == 0), sum(y == 0)), 2)
  ft <- fisher.test(tab)                                              # R: fisher.test(2x2)
  bin[[as.character(fu)]] <- list(n = length(x), b = b, c = cc, p_mcnemar = bt$p.value,
                                  p_fisher = ft$p.value, or = unname(ft$estimate),
                                  or_low = ft$conf.int[1], or_high = ft$conf.int[2])
}
out$binary_paired <- bin

# ---- repeated measures on complete cases
rm <- list()
for (col in c("value", "score")) {
  m <- W[[col]]; m <- m[complete.cases(m), ]
  long <- data.frame(patient = factor(rep(rownames(m), ncol(m))),
                     visit = factor(rep(weeks, each = nrow(m))), y = as.vector(m))
  a <- summary(aov(y ~ visit + Error(patient / visit), data = long))  # R: aov(... Error(patient/visit))
  tab <- a[["Error: patient:visit"]][[1]]
  fr <- friedman.test(m)                                              # R: friedman.test(wide)
  pw <- list(); mm <- choose(length(weeks), 2)
  for (i in 1:(length(weeks) - 1)) for (j in (i + 1):length(weeks)) {
    tt <- t.test(m[, j], m[, i], paired = TRUE, conf.level = 1 - 0.05 / mm)
    pw[[length(pw) + 1]] <- list(a = weeks[i], b = weeks[j], mean_diff = unname(tt$estimate),
                                 ci_low = tt$conf.int[1], ci_high = tt$conf.int[2],
                                 t = unname(tt$statistic), p = min(1, tt$p.value * mm))
  }
  rm[[col]] <- list(n = nrow(m), F = tab[1, "F value"], df1 = tab[1, "Df"], df2 = tab[2, "Df"],
                    p = tab[1, "Pr(>F)"], friedman = unname(fr$statistic),
                    friedman_df = unname(fr$parameter), friedman_p = fr$p.value,
                    bonferroni = pw)
}
out$repeated <- rm

# ---- linear mixed model, all observations, REML
lm_d <- d[!is.na(d$value), ]
lm_d$visit <- factor(lm_d$visit_week, levels = weeks)
fit <- lmer(value ~ visit + (1 | patient), data = lm_d, REML = TRUE)  # R: lme4::lmer
fe <- fixef(fit); se <- sqrt(diag(as.matrix(vcov(fit))))
vc <- as.data.frame(VarCorr(fit))
# R: lmerTest::lmer + summary(fit_t, ddf = "Satterthwaite")$coefficients
fit_t <- lmerTest::lmer(value ~ visit + (1 | patient), data = lm_d, REML = TRUE)
co <- summary(fit_t, ddf = "Satterthwaite")$coefficients
out$mixed <- list(n_obs = nrow(lm_d), n_subjects = length(unique(lm_d$patient)),
                  estimate = unname(fe[-1]), se = unname(se[-1]), visits = weeks[-1],
                  var_subject = vc$vcov[1], var_residual = vc$vcov[2],
                  df = unname(co[-1, "df"]), t = unname(co[-1, "t value"]),
                  p = unname(co[-1, "Pr(>|t|)"]))

# ---- between groups
grp <- list()
for (spec in list(c("value", 52), c("score", 24), c("value", 0))) {
  col <- spec[1]; wk <- as.numeric(spec[2])
  v <- col_at(col, wk); g2 <- d$group2[d$visit_week == wk][order(d$patient[d$visit_week == wk])]
  g3 <- d$group3[d$visit_week == wk][order(d$patient[d$visit_week == wk])]
  ok <- !is.na(v)
  mw <- suppressWarnings(wilcox.test(v[ok] ~ g2[ok], exact = FALSE, correct = TRUE,
                                     conf.int = TRUE, tol.root = 1e-12))
  # exact conditional p (mid-ranks): coin::wilcox_test(v ~ g, distribution = "exact")
  p_exact <- pvalue(wilcox_test(v ~ g, data = data.frame(v = round(v[ok], 10),
                                                         g = factor(g2[ok])),
                                distribution = "exact"))
  xa <- v[ok & g2 == "A"]; xb <- v[ok & g2 == "B"]
  wl <- t.test(v[ok] ~ g2[ok])                                        # R: t.test(x ~ g)
  kw <- kruskal.test(v[ok] ~ factor(g3[ok]))                          # R: kruskal.test(x ~ g)
  grp[[paste(col, wk, sep = "_")]] <- list(
    n = sum(ok), W = unname(mw$statistic), p_mw = mw$p.value, p_exact = p_exact,
    any_ties = any(duplicated(v[ok])),
    hl_estimate_uniroot = unname(mw$estimate), hl_median = median(outer(xa, xb, "-")),
    hl_ci_low = mw$conf.int[1], hl_ci_high = mw$conf.int[2],
    t = unname(wl$statistic), df = unname(wl$parameter), p_t = wl$p.value,
    diff_AminusB = unname(wl$estimate[1] - wl$estimate[2]),
    ci_low = wl$conf.int[1], ci_high = wl$conf.int[2],
    kw = unname(kw$statistic), kw_df = unname(kw$parameter), p_kw = kw$p.value)
}
out$groups <- grp

# ---- contingency tables (rows = group, columns = positive 0/1)
ct <- list()
for (spec in list(c("group2", 0), c("group3", 52), c("group2", 52))) {
  gcol <- spec[1]; wk <- as.numeric(spec[2])
  s <- d[d$visit_week == wk & !is.na(d$positive), ]
  tab <- table(s[[gcol]], s$positive)                                 # R: table(g, positive)
  cs <- suppressWarnings(chisq.test(tab))                             # R: chisq.test (Yates on 2x2)
  ft <- fisher.test(tab)                                              # R: fisher.test
  e <- list(table = unclass(tab), chi2 = unname(cs$statistic), df = unname(cs$parameter),
            p_chi2 = cs$p.value, p_fisher = ft$p.value)
  if (all(dim(tab) == 2)) {
    e$or_cond <- unname(ft$estimate); e$or_low <- ft$conf.int[1]; e$or_high <- ft$conf.int[2]
    a <- tab[1, 1]; b <- tab[1, 2]; c <- tab[2, 1]; dd <- tab[2, 2]
    lor <- log(a * dd / (b * c)); s_e <- sqrt(1 / a + 1 / b + 1 / c + 1 / dd)
    e$woolf <- c(exp(lor), exp(lor - qnorm(0.975) * s_e), exp(lor + qnorm(0.975) * s_e))
    # Newcombe hybrid score for risk of column 1 (first column) row1 - row2,
    # from prop.test(correct=FALSE) Wilson intervals
    w1 <- prop.test(a, a + b, correct = FALSE)$conf.int
    w2 <- prop.test(c, c + dd, correct = FALSE)$conf.int
    p1 <- a / (a + b); p2 <- c / (c + dd)
    e$newcombe <- c(p1 - p2, p1 - p2 - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2),
                    p1 - p2 + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2))
  }
  ct[[paste(gcol, wk, sep = "_")]] <- e
}
out$tables <- ct

# ---- small samples: R widens the HL confidence level when 95 % is not achievable,
# or returns an end point of the range
small_paired <- list(list(x = c(3.1, 2.0, 4.5, 1.0), y = c(1.0, 2.5, 1.5, 0.0)),
                     list(x = c(2, 3, 3, 5, 1, 4), y = c(1, 1, 2, 2, 1, 4)),
                     list(x = c(5.5, 2.1, 3.3, 8.0, 1.2, 4.4, 6.1, 2.2, 0.5, 3.9),
                          y = c(4.0, 2.5, 1.0, 5.5, 1.2, 2.0, 3.3, 2.9, 1.5, 1.0)))
out$small_paired <- lapply(small_paired, function(s) {
  dd <- round(s$x - s$y, 10)
  wt <- suppressWarnings(wilcox.test(dd, exact = FALSE, correct = FALSE,
                                     conf.int = TRUE, tol.root = 1e-12))
  p_exact <- pvalue(wilcoxsign_test(dd ~ rep(0, length(dd)), distribution = "exact",
                                    zero.method = "Wilcoxon"))
  e <- list(x = s$x, y = s$y, p = wt$p.value, p_exact = p_exact, V = unname(wt$statistic),
            hl = walsh_median(dd[dd != 0]), ci = as.numeric(wt$conf.int),
            conf_level = attr(wt$conf.int, "conf.level"))
  if (!any(dd == 0) && !any(duplicated(abs(dd)))) {
    # no ties, no zeros: R's exact CI, wilcox.test(d, exact = TRUE, conf.int = TRUE)
    we <- suppressWarnings(wilcox.test(dd, exact = TRUE, conf.int = TRUE))
    e$ci_exact <- as.numeric(we$conf.int); e$conf_level_exact <- attr(we$conf.int, "conf.level")
  }
  e
})
small_groups <- list(list(a = c(1.2, 3.4), b = c(2.2, 5.1, 6.0)),
                     list(a = c(1), b = c(2, 3, 4, 5)),
                     list(a = c(1, 2, 2, 3, 5, 7), b = c(2, 4, 4, 6, 8, 9, 9)))
out$small_groups <- lapply(small_groups, function(s) {
  v <- c(s$a, s$b); g <- rep(c("a", "b"), c(length(s$a), length(s$b)))
  mw <- suppressWarnings(wilcox.test(v ~ g, exact = FALSE, correct = TRUE, conf.int = TRUE,
                                     tol.root = 1e-12))
  p_exact <- pvalue(wilcox_test(v ~ factor(g), distribution = "exact"))
  e <- list(a = s$a, b = s$b, W = unname(mw$statistic), p = mw$p.value, p_exact = p_exact,
            hl = median(outer(s$a, s$b, "-")), ci = as.numeric(mw$conf.int))
  if (!any(duplicated(v))) {
    # no ties: R's exact CI, wilcox.test(v ~ g, exact = TRUE, conf.int = TRUE)
    we <- suppressWarnings(wilcox.test(v ~ g, exact = TRUE, conf.int = TRUE))
    e$ci_exact <- as.numeric(we$conf.int); e$conf_level_exact <- attr(we$conf.int, "conf.level")
  }
  e
})

# ---- Fisher r x c on fixed tables (row-major), exact network algorithm
rxc <- list(c(2, 3, 30, 20, 10, 25, 25, 30), c(3, 3, 3, 1, 0, 1, 4, 2, 0, 2, 5),
            c(4, 2, 40, 30, 20, 35, 25, 25, 10, 30), c(3, 4, 8, 6, 5, 4, 7, 9, 3, 6, 5, 4, 8, 7),
            c(3, 3, 12, 10, 8, 11, 9, 7, 10, 12, 5))
out$fisher_rxc <- lapply(rxc, function(v) {
  m <- matrix(v[-(1:2)], v[1], v[2], byrow = TRUE)
  list(table = m, p = fisher.test(m)$p.value)                         # R: fisher.test(r x c)
})

# ---- survival, one row per patient
p <- d[d$visit_week == 0, ]
km <- survfit(Surv(time_weeks, event) ~ 1, data = p)                  # R: survfit, conf.type "log"
out$km <- list(time = km$time, n_risk = km$n.risk, n_event = km$n.event,
               n_censor = km$n.censor, surv = km$surv, lower = km$lower, upper = km$upper)
lr2 <- survdiff(Surv(time_weeks, event) ~ group2, data = p)           # R: survdiff
lr3 <- survdiff(Surv(time_weeks, event) ~ group3, data = p)
out$logrank <- list(group2 = list(chisq = lr2$chisq, df = length(lr2$n) - 1,
                                  p = pchisq(lr2$chisq, length(lr2$n) - 1, lower.tail = FALSE),
                                  obs = unname(lr2$obs), exp = unname(lr2$exp)),
                    group3 = list(chisq = lr3$chisq, df = length(lr3$n) - 1,
                                  p = pchisq(lr3$chisq, length(lr3$n) - 1, lower.tail = FALSE)))

# ---- descriptives per visit (SPSS quartiles = quantile type 6)
desc <- list()
for (i in seq_along(weeks)) {
  v <- W$value[, i]; v <- v[!is.na(v)]
  q <- quantile(v, c(0.25, 0.5, 0.75), type = 6)
  desc[[as.character(weeks[i])]] <- list(n = length(v), mean = mean(v), sd = sd(v),
                                         median = unname(q[2]), p25 = unname(q[1]),
                                         p75 = unname(q[3]), min = min(v), max = max(v))
}
out$describe <- desc

# ---- proportions: Wilson = prop.test(correct=FALSE), Clopper-Pearson = binom.test
props <- list()
for (kn in list(c(7, 23), c(0, 10), c(10, 10), c(1, 1), c(15, 23))) {
  k <- kn[1]; n <- kn[2]
  props[[length(props) + 1]] <- list(k = k, n = n,
    wilson = prop.test(k, n, correct = FALSE)$conf.int[1:2],
    cp = binom.test(k, n)$conf.int[1:2])
}
out$proportions <- props

# ---- p.adjust, NA kept in place
pv <- c(0.01, NA, 0.04, 0.03, 0.2, 0.005, 0.04)
out$p_adjust <- list(p = pv, bonferroni = p.adjust(pv, "bonferroni"),
                     holm = p.adjust(pv, "holm"), bh = p.adjust(pv, "BH"))

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/r/stats_reference.json")
cat("wrote tests/r/stats_reference.json\n")
