"""MonthlyAggregate becomes PeriodAggregate: closed weeks are stored too, so
a weekly report's 12-week trend reads rows instead of recounting weeks."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reports", "0002_default_schedules")]

    operations = [
        migrations.RemoveConstraint(
            model_name="monthlyaggregate", name="aggregate_one_per_month_scope"
        ),
        migrations.RenameModel("MonthlyAggregate", "PeriodAggregate"),
        migrations.RenameField("periodaggregate", "month", "start"),
        migrations.AddField(
            model_name="periodaggregate",
            name="kind",
            field=models.CharField(
                choices=[("weekly", "Week"), ("monthly", "Month")],
                default="monthly",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="periodaggregate",
            name="start",
            field=models.DateField(
                help_text="The week's Monday or the month's first day."
            ),
        ),
        migrations.AlterModelOptions(
            name="periodaggregate", options={"ordering": ["kind", "start", "scope"]}
        ),
        migrations.AddConstraint(
            model_name="periodaggregate",
            constraint=models.UniqueConstraint(
                fields=("kind", "start", "scope"), name="aggregate_one_per_period"
            ),
        ),
    ]
