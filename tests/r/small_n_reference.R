# Reference numbers for tests/test_stats_small_n.py (issue 10: statistics at small n).
# Run from the repository root:  Rscript tests/r/small_n_reference.R
# Reads tests/r/small_n_fixture.csv (written by tests/r/make_small_n_fixture.py) and
# writes tests/r/small_n_reference.json. Every block names the R call it reproduces.
#
# Conventions, as lupus_dash.stats: differences and values are rounded to 10
# decimals before any ranking (round(x - y, 10)), zero differences dropped
# (Wilcoxon's method), two-group direction group1 - group2 in sorted label order.
suppressPackageStartupMessages({
  library(jsonlite)
  library(coin)
  library(lmerTest)
  library(car)
})
d <- read.csv("tests/r/small_n_fixture.csv", stringsAsFactors = FALSE)
weeks <- c(0, 4, 12, 24)
pat <- d[d$visit_week == 0, ]
pat <- pat[order(pat$patient), ]
wide <- function(col, keep = rep(TRUE, nrow(pat))) {
  w <- reshape(d[, c("patient", "visit_week", col)], idvar = "patient",
               timevar = "visit_week", direction = "wide")
  w <- w[match(pat$patient, w$patient), ]
  m <- as.matrix(w[, paste0(col, ".", weeks)])
  rownames(m) <- pat$patient
  m[keep, , drop = FALSE]
}
at <- function(col, wk) d[d$visit_week == wk, ][order(d$patient[d$visit_week == wk]), col]
out <- list(r_version = R.version.string,
            coin_version = as.character(packageVersion("coin")),
            lmerTest_version = as.character(packageVersion("lmerTest")),
            lme4_version = as.character(packageVersion("lme4")),
            car_version = as.character(packageVersion("car")))

# ---- Wilcoxon signed-rank ---------------------------------------------------
signed_rank <- function(x, y) {
  ok <- !is.na(x) & !is.na(y)
  dd <- round(x[ok] - y[ok], 10)
  nz <- dd[dd != 0]; n <- length(dd); m <- length(nz)
  e <- list(n = n, n_nonzero = m)
  if (m == 0) return(e)
  r <- rank(abs(nz)); nt <- table(r)
  e$V <- sum(r[nz > 0])
  d0 <- x[ok] - y[ok]; nz0 <- d0[d0 != 0]; r0 <- rank(abs(nz0))
  e$V_unrounded <- sum(r0[nz0 > 0])  # what R gives without the rounding
  # SPSS Z: (V - m(m+1)/4) / sigma, tie-corrected, no continuity correction
  e$z <- (e$V - m * (m + 1) / 4) / sqrt(m * (m + 1) * (2 * m + 1) / 24 - sum(nt^3 - nt) / 48)
  # R: wilcox.test(d, exact = FALSE, correct = FALSE)$p.value
  e$p_asymptotic <- wilcox.test(dd, exact = FALSE, correct = FALSE)$p.value
  # R: coin::wilcoxsign_test(d ~ 0, distribution = "exact", zero.method = "Wilcoxon")
  e$p_exact <- pvalue(wilcoxsign_test(dd ~ rep(0, n), distribution = "exact",
                                      zero.method = "Wilcoxon"))
  w <- outer(nz, nz, "+") / 2
  e$hl <- median(w[upper.tri(w, diag = TRUE)])   # Hodges-Lehmann pseudo-median
  exact_ci <- m == n && !any(duplicated(abs(nz))) && n <= 50
  # R: wilcox.test(d, exact = <no ties, no zeros>, correct = FALSE, conf.int = TRUE)
  wt <- suppressWarnings(wilcox.test(nz, exact = exact_ci, correct = FALSE, conf.int = TRUE,
                                     tol.root = 1e-12))
  if (all(is.finite(wt$conf.int))) {
    e$ci <- as.numeric(wt$conf.int)
    e$conf_level <- attr(wt$conf.int, "conf.level")
  }
  e$ci_method <- if (exact_ci) "exact" else "asymptotic"
  e
}
paired <- list()
add_paired <- function(key, col, fu, cmp, keep = rep(TRUE, nrow(pat))) {
  m <- wide(col, keep)
  paired[[key]] <<- c(list(col = col, fu = fu, cmp = cmp, subset = deparse(substitute(keep))),
                      signed_rank(m[, match(fu, weeks)], m[, match(cmp, weeks)]))
}
add_paired("c3_4_0", "c3", 4, 0)
add_paired("c3_12_0", "c3", 12, 0)
add_paired("c3_24_0", "c3", 24, 0)
add_paired("c3_24_12", "c3", 24, 12)
add_paired("score_4_0", "score", 4, 0)
add_paired("score_24_0", "score", 24, 0)
add_paired("class4_c3_4_0", "c3", 4, 0, pat$class4)
add_paired("class4_c3_24_0", "c3", 24, 0, pat$class4)
add_paired("class4_score_24_0", "score", 24, 0, pat$class4)
add_paired("groupA_c3_12_0", "c3", 12, 0, pat$group == "A")
out$paired <- paired

# ---- Wilcoxon rank-sum (Mann-Whitney) ----------------------------------------
rank_sum <- function(v, g) {
  ok <- !is.na(v) & !is.na(g)
  v <- round(v[ok], 10); g <- factor(g[ok])
  a <- v[g == levels(g)[1]]; b <- v[g == levels(g)[2]]
  e <- list(group1 = levels(g)[1], group2 = levels(g)[2], n1 = length(a), n2 = length(b))
  # R: wilcox.test(a, b, exact = FALSE, correct = TRUE)
  mw <- suppressWarnings(wilcox.test(a, b, exact = FALSE, correct = TRUE))
  e$W <- unname(mw$statistic); e$p_asymptotic <- mw$p.value
  e$hl <- median(outer(a, b, "-"))
  if (min(length(a), length(b)) < 2) return(e)  # a group of one: W only
  # R: coin::wilcox_test(v ~ g, distribution = "exact")
  e$p_exact <- pvalue(wilcox_test(v ~ g, distribution = "exact"))
  exact_ci <- !any(duplicated(v)) && length(v) <= 50
  # R: wilcox.test(a, b, exact = <no ties>, correct = TRUE, conf.int = TRUE)
  wc <- suppressWarnings(wilcox.test(a, b, exact = exact_ci, correct = TRUE, conf.int = TRUE,
                                     tol.root = 1e-12))
  e$ci <- as.numeric(wc$conf.int); e$conf_level <- attr(wc$conf.int, "conf.level")
  e$ci_method <- if (exact_ci) "exact" else "asymptotic"
  e
}
groups <- list()
for (wk in c(0, 4, 24)) {
  for (col in c("c3", "score")) {
    v <- at(col, wk)
    ab <- pat$group != "C"
    groups[[paste("group", col, wk, sep = "_")]] <- c(
      list(col = col, week = wk, by = "group_AB"), rank_sum(v[ab], pat$group[ab]))
    groups[[paste("class4", col, wk, sep = "_")]] <- c(
      list(col = col, week = wk, by = "class4"), rank_sum(v, pat$class4))
  }
}
# a group of one: C (1 patient) vs A
ac <- pat$group != "B"
groups$group_of_one <- c(list(col = "c3", week = 24, by = "group_AC"),
                         rank_sum(at("c3", 24)[ac], pat$group[ac]))
out$groups <- groups

# ---- Kruskal-Wallis with small groups (R: kruskal.test(v ~ g)) ----------------
kw <- list()
for (wk in c(0, 24)) {
  v <- at("c3", wk); ok <- !is.na(v)
  k <- kruskal.test(v[ok] ~ factor(pat$arm[ok]))
  kw[[as.character(wk)]] <- list(H = unname(k$statistic), df = unname(k$parameter),
                                 p = k$p.value, sizes = as.vector(table(pat$arm[ok])))
}
out$kruskal <- kw

# ---- Mixed model, Satterthwaite (R: lmerTest::lmer, summary(ddf = "Satterthwaite")) -----
mixed <- function(col, keep_patients) {
  lv <- d[d$patient %in% keep_patients & !is.na(d[[col]]), c("patient", "visit_week", col)]
  names(lv) <- c("patient", "visit", "value")
  lv$visit <- factor(lv$visit, levels = weeks)
  fit <- lmerTest::lmer(value ~ visit + (1 | patient), data = lv, REML = TRUE)
  co <- summary(fit, ddf = "Satterthwaite")$coefficients[-1, , drop = FALSE]
  ci <- cbind(co[, "Estimate"] - qt(0.975, co[, "df"]) * co[, "Std. Error"],
              co[, "Estimate"] + qt(0.975, co[, "df"]) * co[, "Std. Error"])
  vc <- as.data.frame(VarCorr(fit))
  list(n_subjects = length(unique(lv$patient)), n_obs = nrow(lv), visits = weeks[-1],
       estimate = unname(co[, "Estimate"]), se = unname(co[, "Std. Error"]),
       df = unname(co[, "df"]), t = unname(co[, "t value"]), p = unname(co[, "Pr(>|t|)"]),
       ci_low = unname(ci[, 1]), ci_high = unname(ci[, 2]),
       var_subject = vc$vcov[1], var_residual = vc$vcov[2], singular = isSingular(fit))
}
out$mixed <- list(c3 = mixed("c3", pat$patient), score = mixed("score", pat$patient),
                  class4_c3 = mixed("c3", pat$patient[pat$class4]),
                  groupA_score = mixed("score", pat$patient[pat$group == "A"]))

# ---- RM-ANOVA with sphericity corrections, as SPSS prints them -----------------
# By hand from the double-centred covariance matrix: Greenhouse-Geisser epsilon,
# the original Huynh-Feldt (1976) epsilon that SPSS prints, capped at 1, lower
# bound 1/(k-1), and Mauchly's W with SPSS's first-order chi-square (R's
# mauchly.test adds a second-order term: its p is kept as mauchly_p_r).
# car::Anova is kept for comparison (car_*): car prints Lecoutre's (1991) HF,
# ((N - g + 1) p eps - 2) / (p (N - g - p eps)), which for one group of patients
# (g = 1, this design) is the original formula; car does not cap the printed
# epsilon at 1 (it warns "HF eps > 1 treated as 1" and uses 1 for the p).
rm_anova <- function(m) {
  m <- m[complete.cases(m), , drop = FALSE]
  n <- nrow(m); k <- ncol(m); p <- k - 1
  long <- data.frame(y = as.vector(m), visit = factor(rep(weeks, each = n)),
                     patient = factor(rep(rownames(m), k)))
  tab <- summary(aov(y ~ visit + Error(patient / visit), data = long))[["Error: patient:visit"]][[1]]
  f <- tab[1, "F value"]; df1 <- tab[1, "Df"]; df2 <- tab[2, "Df"]
  S <- cov(m); P <- diag(k) - matrix(1 / k, k, k); D <- P %*% S %*% P
  gg <- sum(diag(D))^2 / (p * sum(D * D))
  hf <- min(1, (n * p * gg - 2) / (p * (n - 1 - p * gg)))
  lb <- 1 / p
  C <- contr.poly(k); M <- t(C) %*% S %*% C
  W <- det(M) / (sum(diag(M)) / p)^p
  chi2 <- -(n - 1 - (2 * p^2 + p + 2) / (6 * p)) * log(W)
  mdf <- p * (p + 1) / 2 - 1
  e <- list(n = n, k = k, F = f, df1 = df1, df2 = df2, p = tab[1, "Pr(>F)"],
            epsilon_gg = gg, epsilon_hf = hf, epsilon_lb = lb,
            p_greenhouse_geisser = pf(f, df1 * gg, df2 * gg, lower.tail = FALSE),
            p_huynh_feldt = pf(f, df1 * hf, df2 * hf, lower.tail = FALSE),
            p_lower_bound = pf(f, df1 * lb, df2 * lb, lower.tail = FALSE),
            mauchly_w = W, mauchly_chi2 = chi2, mauchly_df = mdf,
            mauchly_p = pchisq(chi2, mdf, lower.tail = FALSE))
  fit <- lm(m ~ 1)
  mt <- mauchly.test(fit, X = ~1)                      # R: mauchly.test(lm(m ~ 1), X = ~1)
  e$mauchly_w_r <- unname(mt$statistic); e$mauchly_p_r <- mt$p.value
  av <- car::Anova(fit, idata = data.frame(visit = factor(weeks)), idesign = ~visit)
  adj <- summary(av, multivariate = FALSE)$pval.adjustments      # R: car::Anova, summary()
  e$car_gg <- unname(adj[1, "GG eps"]); e$car_p_gg <- unname(adj[1, "Pr(>F[GG])"])
  e$car_hf <- unname(adj[1, "HF eps"]); e$car_p_hf <- unname(adj[1, "Pr(>F[HF])"])
  e
}
out$rm_anova <- list(c3 = rm_anova(wide("c3")), score = rm_anova(wide("score")),
                     class4_c3 = rm_anova(wide("c3", pat$class4)))

# ---- Binary contrasts: Newcombe risk difference, Woolf odds ratio, Fisher p -----
newcombe <- function(k1, n1, k2, n2) {
  # Newcombe (1998) method 10 from the Wilson limits R: prop.test(k, n, correct = FALSE)
  w1 <- if (k1 %in% c(0, n1)) {
    z <- qnorm(0.975); p <- k1 / n1
    c((p + z^2 / (2 * n1) - z * sqrt(p * (1 - p) / n1 + z^2 / (4 * n1^2))) / (1 + z^2 / n1),
      (p + z^2 / (2 * n1) + z * sqrt(p * (1 - p) / n1 + z^2 / (4 * n1^2))) / (1 + z^2 / n1))
  } else suppressWarnings(prop.test(k1, n1, correct = FALSE)$conf.int[1:2])
  w2 <- if (k2 %in% c(0, n2)) {
    z <- qnorm(0.975); p <- k2 / n2
    c((p + z^2 / (2 * n2) - z * sqrt(p * (1 - p) / n2 + z^2 / (4 * n2^2))) / (1 + z^2 / n2),
      (p + z^2 / (2 * n2) + z * sqrt(p * (1 - p) / n2 + z^2 / (4 * n2^2))) / (1 + z^2 / n2))
  } else suppressWarnings(prop.test(k2, n2, correct = FALSE)$conf.int[1:2])
  p1 <- k1 / n1; p2 <- k2 / n2
  c(p1 - p2, p1 - p2 - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2),
    p1 - p2 + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2))
}
woolf <- function(k1, n1, k2, n2) {
  t <- c(k1, n1 - k1, k2, n2 - k2)
  haldane <- any(t == 0)
  if (haldane) t <- t + 0.5                         # Haldane-Anscombe 0.5 on every cell
  lor <- log(t[1] * t[4] / (t[2] * t[3])); se <- sqrt(sum(1 / t))
  list(or = exp(lor), ci = exp(lor + c(-1, 1) * qnorm(0.975) * se), haldane = haldane)
}
contrast <- function(k1, n1, k2, n2) {
  o <- woolf(k1, n1, k2, n2)
  list(k1 = k1, n1 = n1, k2 = k2, n2 = n2, rd = newcombe(k1, n1, k2, n2), or = o$or,
       or_ci = o$ci, haldane = o$haldane,
       p_fisher = fisher.test(matrix(c(k1, k2, n1 - k1, n2 - k2), 2))$p.value)  # R: fisher.test
}
r24 <- at("responder", 24); ok <- !is.na(r24)
ka <- sum(r24[ok & pat$group == "A"]); na <- sum(ok & pat$group == "A")
kb <- sum(r24[ok & pat$group == "B"]); nb <- sum(ok & pat$group == "B")
k4 <- sum(r24[ok & pat$class4]); n4 <- sum(ok & pat$class4)
ko <- sum(r24[ok & !pat$class4]); no <- sum(ok & !pat$class4)
out$contrasts <- list(contrast(ka, na, kb, nb), contrast(k4, n4, ko, no),
                      contrast(0, 5, 3, 6), contrast(5, 5, 1, 4), contrast(2, 3, 1, 3),
                      contrast(7, 20, 12, 21))

# ---- McNemar exact (R: binom.test(b, b + c)) ------------------------------------
mc <- list()
for (key in c("A", "class4")) {
  keep <- if (key == "A") pat$group == "A" else pat$class4
  m <- wide("responder", keep); x <- m[, 4]; y <- m[, 1]; ok <- !is.na(x) & !is.na(y)
  b <- sum(y[ok] == 1 & x[ok] == 0); c <- sum(y[ok] == 0 & x[ok] == 1)
  mc[[key]] <- list(n = sum(ok), b = b, c = c,
                    p = if (b + c > 0) binom.test(b, b + c)$p.value else NULL)
}
out$mcnemar <- mc

# ---- Edge cases ---------------------------------------------------------------
edge <- list()
# n = 5, all differences negative: the smallest exact p, 2 / 2^5 = 0.0625
d5 <- -(1:5); z5 <- rep(0, 5)
edge$n5_negative <- list(d = d5, p_exact = pvalue(wilcoxsign_test(
  d5 ~ z5, distribution = "exact", zero.method = "Wilcoxon")))
# all differences tied (one mid-rank): exact p = 2 / 2^4
dt <- rep(0.5, 4); z4 <- rep(0, 4)
edge$all_tied <- list(d = dt, p_exact = pvalue(wilcoxsign_test(
  dt ~ z4, distribution = "exact", zero.method = "Wilcoxon")),
  p_asymptotic = wilcox.test(dt, exact = FALSE, correct = FALSE)$p.value)
# the exact/asymptotic switch: n = 50 exact (coin), n = 51 asymptotic (wilcox.test)
d51 <- ((1:51 * 37) %% 23 - 9) / 4
d50 <- d51[1:50]; z50 <- rep(0, 50); z51 <- rep(0, 51)
edge$switch_signed <- list(
  d = d51,
  p_exact_50 = pvalue(wilcoxsign_test(d50 ~ z50, distribution = "exact",
                                      zero.method = "Wilcoxon")),
  p_asymptotic_50 = wilcox.test(d51[1:50], exact = FALSE, correct = FALSE)$p.value,
  p_asymptotic_51 = wilcox.test(d51, exact = FALSE, correct = FALSE)$p.value,
  p_exact_51 = pvalue(wilcoxsign_test(d51 ~ z51, distribution = "exact",
                                      zero.method = "Wilcoxon")))
v51 <- ((1:51 * 29) %% 17) / 2
g51 <- ifelse(1:51 %% 2 == 1, "a", "b")
edge$switch_rank_sum <- list(
  v = v51, g = g51,
  p_exact_50 = pvalue(wilcox_test(v ~ factor(g), data = data.frame(v = v51[1:50], g = g51[1:50]),
                                  distribution = "exact")),
  p_asymptotic_50 = wilcox.test(v51[1:50] ~ g51[1:50], exact = FALSE, correct = TRUE)$p.value,
  p_asymptotic_51 = wilcox.test(v51 ~ g51, exact = FALSE, correct = TRUE)$p.value,
  p_exact_51 = pvalue(wilcox_test(v ~ factor(g), data = data.frame(v = v51, g = g51),
                                  distribution = "exact")))
out$edge <- edge

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/r/small_n_reference.json")
cat("wrote tests/r/small_n_reference.json\n")
